"""A center that loses nothing it acknowledged: the embedded Redis's append-only file, and the
warning workers and submitters give about a Redis that can lose jobs (thugrq.redis_check)."""

from __future__ import annotations

import shlex
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
import redis

from tests.conftest import BIN, with_dns
from tests.test_acl import readme_acl
from tests.test_local import home, run_env  # noqa: F401 (a fixture)
from thugrq import redis_check
from thugrq.process import LOOPBACK, free_port
from thugrq.redis_server import launch_redis, start_redis

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running

EVICTION = "can lose jobs: maxmemory-policy is allkeys-lru"
NO_PERSISTENCE = "can lose jobs: no persistence"


def embedded_url(environment) -> str:
    return (home(environment) / "redis.url").read_text().strip()


def run_thugrq(environment, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "thugrq"), *args], env=environment, input=input, capture_output=True,
        text=True, timeout=300,
    )


def test_every_acknowledged_job_survives_a_sigkill_of_the_embedded_redis(run_env):  # noqa: F811
    assert run_thugrq(run_env, "up").returncode == 0
    url = embedded_url(run_env)
    urls = "\n".join(f"http://jp.test/{n}" for n in range(19))
    batch = run_thugrq({**run_env, "THUGRQ_REDIS_URL": url}, "enqueue", "-f", "-", "--country",
                       "JP", input=urls)
    assert batch.returncode == 0, batch.stderr
    last = run_thugrq({**run_env, "THUGRQ_REDIS_URL": url}, "enqueue", "http://jp.test/last",
                      "--country", "JP")
    assert last.returncode == 0, last.stderr
    acknowledged = batch.stdout.split() + last.stdout.split()
    assert len(acknowledged) == 20

    server = psutil.Process(int((home(run_env) / "redis.pid").read_text()))
    server.send_signal(signal.SIGKILL)  # at once: no SHUTDOWN, no save on exit
    server.wait(timeout=10)
    again = run_thugrq(run_env, "up")
    assert again.returncode == 0, again.stderr
    assert "started the embedded Redis" in again.stderr

    connection = redis.Redis.from_url(embedded_url(run_env), decode_responses=True)
    assert sorted(connection.lrange("rq:queue:JP", 0, -1)) == sorted(acknowledged)
    assert all(connection.exists(f"rq:job:{job_id}") for job_id in acknowledged)


def test_the_embedded_redis_keeps_the_data_of_its_rdb_only_days(tmp_path):
    directory = tmp_path / "redis"
    port = free_port()
    client = redis.Redis(port=port)
    older = launch_redis(["--port", str(port), "--bind", LOOPBACK], directory, client)
    client.set("rq:job:old", "kept")
    older.terminate()  # it saves dump.rdb on the way out: its data there alone, as thugrq kept it
    older.wait(timeout=10)
    assert (directory / "dump.rdb").exists() and not (directory / "appendonlydir").exists()
    server = start_redis(port, directory, persist=True)
    try:
        assert client.get("rq:job:old") == b"kept"
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.set("rq:job:new", "kept too")
    finally:
        server.kill()  # SIGKILL: only the append-only file has rq:job:new
        server.wait(timeout=10)
    server = start_redis(port, directory, persist=True)
    try:
        assert client.mget("rq:job:old", "rq:job:new") == [b"kept", b"kept too"]
    finally:
        server.kill()
        server.wait(timeout=10)


@pytest.fixture
def other_redis(tmp_path: Path):
    """Start a redis-server with these extra arguments on a free port; its URL. The Redis a
    fleet is given, configured one way or another; stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(*arguments: str) -> str:
        port = free_port()
        directory = tmp_path / f"redis-{port}"
        started.append(launch_redis(
            ["--port", str(port), "--bind", LOOPBACK, *arguments], directory,
            redis.Redis(port=port),
        ))
        return f"redis://{LOOPBACK}:{port}/0"

    yield start
    for server in started:
        server.kill()
        server.wait(timeout=10)


def enqueue(env, url: str) -> subprocess.CompletedProcess:
    ran = subprocess.run(
        [str(BIN / "thugrq"), "enqueue", "http://a.test/", "--country", "JP"],
        env=with_dns({**env, "THUGRQ_REDIS_URL": url}), capture_output=True, text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return ran


def burst(env, url: str) -> subprocess.CompletedProcess:
    ran = subprocess.run(
        [str(BIN / "thugrq-worker"), "--burst", "--queue", "generic"],
        env=with_dns({**env, "THUGRQ_REDIS_URL": url}), capture_output=True, text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    return ran


def test_enqueue_warns_about_a_redis_that_evicts_keys(env, other_redis):
    url = other_redis("--maxmemory-policy", "allkeys-lru")
    said = enqueue(env, url).stderr
    assert f"WARNING: the Redis at {url} {EVICTION}" in said
    assert "maxmemory-policy noeviction" in said
    assert NO_PERSISTENCE not in said  # its default RDB save points persist it


def test_the_worker_warns_about_a_redis_that_evicts_keys(env, other_redis):
    said = burst(env, other_redis("--maxmemory-policy", "allkeys-lru")).stderr
    assert EVICTION in said


def test_enqueue_warns_about_a_redis_that_keeps_nothing_on_disk(env, other_redis):
    said = enqueue(env, other_redis("--save", "", "--appendonly", "no")).stderr
    assert NO_PERSISTENCE in said
    assert "appendonly yes" in said
    assert EVICTION not in said


def test_the_worker_warns_about_a_redis_that_keeps_nothing_on_disk(env, other_redis):
    said = burst(env, other_redis("--save", "", "--appendonly", "no")).stderr
    assert NO_PERSISTENCE in said


def test_a_default_configured_redis_gets_no_warning(env, other_redis):
    url = other_redis()
    assert "WARNING" not in enqueue(env, url).stderr
    assert "WARNING" not in burst(env, url).stderr


def test_the_embedded_redis_gets_no_warning(tmp_path):
    port = free_port()
    server = start_redis(port, tmp_path / "redis", persist=True)
    try:
        assert redis_check.risks(redis_check.settings(redis.Redis(port=port))) == []
    finally:
        server.kill()
        server.wait(timeout=10)


def add_user(url: str, command: list[str]) -> str:
    """Create the user of this ACL SETUSER command on the Redis at `url`; the user's URL."""
    redis.Redis.from_url(url).execute_command(*command)
    password = next(word[1:] for word in command if word.startswith(">"))
    return url.replace("redis://", f"redis://{command[2]}:{password}@")


def test_users_denied_config_still_get_the_check_through_info(env, other_redis):
    url = other_redis("--maxmemory-policy", "allkeys-lru")
    worker = add_user(url, readme_acl("thugrq-worker"))
    submitter = add_user(url, readme_acl("thugrq-submitter"))
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis.from_url(worker).config_get("maxmemory-policy")
    assert EVICTION in burst(env, worker).stderr
    assert EVICTION in enqueue(env, submitter).stderr


def test_a_user_denied_config_and_info_is_not_checked_and_not_stopped(env, other_redis):
    url = other_redis("--maxmemory-policy", "allkeys-lru")
    blind = add_user(url, shlex.split("ACL SETUSER blind on >secret ~* &* +@all -@dangerous"))
    ran = enqueue(env, blind)  # succeeds
    assert "WARNING" not in ran.stderr
    assert len(ran.stdout.split()) == 1


def test_the_warning_is_given_once_per_process(other_redis, monkeypatch):
    monkeypatch.setattr(redis_check, "_checked", False)
    url = other_redis("--maxmemory-policy", "allkeys-lru")
    said: list[str] = []
    redis_check.warn_once(url, said.append)
    redis_check.warn_once(url, said.append)
    assert len(said) == 1 and EVICTION in said[0]


def test_a_redis_that_cannot_be_reached_is_not_checked_and_raises_nothing(monkeypatch):
    monkeypatch.setattr(redis_check, "_checked", False)
    said: list[str] = []
    redis_check.warn_once(f"redis://{LOOPBACK}:{free_port()}/0", said.append)
    assert said == []

