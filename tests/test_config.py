"""Where Redis is: the flag, THUGRQ_REDIS_URL, REDIS_URL, then the local default."""

from __future__ import annotations

import re

import pytest

from thugrq import config
from thugrq.exceptions import ConfigError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in config.REDIS_URL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_default_is_the_local_redis():
    assert config.redis_url() == config.DEFAULT_REDIS_URL
    assert not config.redis_url_configured()


def test_redis_url_variable_is_used(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://r:1/0")
    assert config.redis_url() == "redis://r:1/0"


def test_thugrq_variable_wins_over_redis_url(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://r:1/0")
    monkeypatch.setenv("THUGRQ_REDIS_URL", "redis://t:2/0")
    assert config.redis_url() == "redis://t:2/0"


def test_flag_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("THUGRQ_REDIS_URL", "redis://t:2/0")
    assert config.redis_url("redis://f:3/0") == "redis://f:3/0"


@pytest.mark.parametrize(
    "url", ["http://h:6379", "h:6379", "redis://h:port/0", "redis://h:6379/zero"]
)
def test_unusable_redis_urls_are_refused(url):
    with pytest.raises(ConfigError, match="invalid Redis URL"):
        config.check_redis_url(url)


@pytest.mark.parametrize(
    "url", ["redis://h:6379/0", "rediss://user:pw@h:6380/2", "unix:///run/redis.sock"]
)
def test_usable_redis_urls_pass(url):
    assert config.check_redis_url(url) == url


def test_passwords_are_redacted_from_messages():
    assert config.redacted("redis://user:s3cret@h:1/0") == "redis://user:***@h:1/0"


def test_a_wrong_password_says_redis_refused_the_credentials(redis_url):
    url = redis_url.replace("redis://", "redis://nobody:wrong@")
    expected = f"Redis at {config.redacted(url)} refused the credentials: "
    with pytest.raises(ConfigError, match=f"^{re.escape(expected)}"):
        config.connect(url)
