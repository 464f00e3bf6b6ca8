"""Options and URLs are typed and validated the same way on both sides of the queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thugrq.exceptions import InvalidInput
from thugrq.options import Options, check_url
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES


def test_personality_table_matches_the_installed_thug():
    import thug

    found = {
        path.stem: " ".join(json.loads(path.read_text())["description"].split())
        for path in Path(thug.__personalities_path__).glob("*.json")
    }
    assert PERSONALITIES == found
    assert DEFAULT_PERSONALITY in PERSONALITIES


def test_defaults_are_valid_and_round_trip():
    options = Options()
    assert Options.from_dict(options.to_dict()) == options


@pytest.mark.parametrize(
    "data, message",
    [
        ({"useragent": "nosuchua"}, "invalid useragent"),
        ({"useragent": 7}, "invalid useragent"),
        ({"timeout": 0}, "invalid timeout"),
        ({"timeout": True}, "invalid timeout"),
        ({"timeout": 10**9}, "invalid timeout"),
        ({"referer": "file:///etc/passwd"}, "invalid referer"),
        ({"logdir": "/tmp"}, "unknown option(s) logdir"),
        ({"output": "/etc/cron.d/x", "useragent": "win7ie90"}, "unknown option(s) output"),
    ],
)
def test_invalid_options_are_refused_naming_the_option(data, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        Options.from_dict(data)


@pytest.mark.parametrize("data", [None, [], "useragent=winxpie60", 3])
def test_options_must_be_an_object(data):
    with pytest.raises(InvalidInput, match="expected an object"):
        Options.from_dict(data)


@pytest.mark.parametrize(
    "url", ["http://example.com/", "https://example.com:8443/a?b=c#d", "http://[::1]:8080/"]
)
def test_http_urls_are_accepted(url):
    assert check_url(url) == url


def test_surrounding_whitespace_is_trimmed():
    assert check_url("  http://example.com/\n") == "http://example.com/"


@pytest.mark.parametrize(
    "url",
    [
        "not-a-url", "example.com", "file:///etc/passwd", "javascript:alert(1)",
        "ftp://example.com/", "http://", "http:///path", "http://exa mple.com/",
        "http://example.com:notaport/", "http://example.com/\x00", "http://x.test/" + "a" * 5000,
        None, 42,
    ],
)
def test_anything_but_an_absolute_http_url_is_refused(url):
    with pytest.raises(InvalidInput, match="invalid URL"):
        check_url(url)
