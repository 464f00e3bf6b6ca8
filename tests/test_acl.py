"""Workers and submitters under the Redis ACL users the README gives, on a real Redis."""

from __future__ import annotations

import json
import shlex

import pytest
import redis

from thugrq import local

README = (__import__("pathlib").Path(__file__).resolve().parent.parent / "README.md").read_text()


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
    port = local.free_port()
    server = local.start_redis(port, tmp_path / "acl-redis", persist=False)
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
    assert thugrq("queues", env=submitter).returncode == 0


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
    """A private Redis that speaks TLS only, with the README's users; yields their rediss URLs."""
    import subprocess
    import time

    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(certificate), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    port = local.free_port()
    server = subprocess.Popen(
        [local.redis_server_binary(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certificate), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(certificate), "--tls-auth-clients", "no",
         "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificate}"
    admin = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            admin.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    yield add_users(admin, url)
    server.terminate()
    server.wait(timeout=10)


def test_every_command_works_over_tls_with_credentials(tls_redis, thugrq, burst_worker, env, site):
    submitter = {**env, "THUGRQ_REDIS_URL": tls_redis["thugrq-submitter"]}
    enqueued = thugrq("enqueue", site.url("/activex"), "--json", env=submitter, check=True)
    row = json.loads(enqueued.stdout)
    ran = burst_worker("--country", "IT", env={**env, "THUGRQ_REDIS_URL": tls_redis["thugrq-worker"]})
    assert ran.returncode == 0, ran.stderr
    for args in (
        ("status", row["id"]), ("result", row["id"]), ("wait", row["id"]), ("group", row["group"]),
        ("queues",), ("workers",), ("countries",),
    ):
        shown = thugrq(*args, env=submitter)
        assert shown.returncode == 0, (args, shown.stderr)
