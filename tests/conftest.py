"""The harness of DESIGN.md: a private Redis, a test site on 127.0.0.1, real worker processes.

Nothing here talks to a Redis the user runs: each session starts its own `redis-server` on a
free port in a temporary directory, and every test starts with an empty database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.dns_standin import DnsStandIn
from tests.site import Site
from thugrq import local

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("THUGRQ_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under THUGRQ_REQUIRE_ALL=1 (CI) a skipped test counts as failed: nothing may go untested."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under THUGRQ_REQUIRE_ALL=1: {report.longrepr}"


@pytest.fixture(scope="session", autouse=True)
def no_real_dns() -> Iterator[None]:
    """Geo lookups go to an empty loopback stand-in (NXDOMAIN for every name) unless a test sets
    up its own `cymru`: no test may ever ask the real DNS services."""
    saved = {name: os.environ.get(name) for name in ("THUGRQ_DNS", "THUGRQ_DNS_TIMEOUT")}
    with DnsStandIn() as empty:
        os.environ.update(THUGRQ_DNS=empty.address, THUGRQ_DNS_TIMEOUT="0.5")
        yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def cymru(monkeypatch: pytest.MonkeyPatch) -> Iterator[DnsStandIn]:
    """The loopback DNS stand-in, set as THUGRQ_DNS for this test and its processes."""
    with DnsStandIn() as server:
        monkeypatch.setenv("THUGRQ_DNS", server.address)
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a private redis-server for this test session."""
    port = local.free_port()
    process = local.start_redis(port, tmp_path_factory.mktemp("redis"), persist=False)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The private Redis, emptied for this test."""
    redis.Redis.from_url(redis_server).flushall()
    return redis_server


@pytest.fixture
def connection(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for thugrq processes: the private Redis, and a private THUGRQ_HOME.

    THUGRQ_DNS is taken when a process starts (see `with_dns`), so a `cymru` stand-in applies
    whatever order the fixtures were set up in."""
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    environment["THUGRQ_REDIS_URL"] = redis_url
    environment["THUGRQ_HOME"] = str(tmp_path / "thugrq-home")
    return environment


def with_dns(environment: dict[str, str]) -> dict[str, str]:
    """`environment` with this moment's THUGRQ_DNS (the test's `cymru`, or the empty one)."""
    return {**environment, "THUGRQ_DNS": os.environ["THUGRQ_DNS"]}


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    with Site() as running:
        yield running


@pytest.fixture
def thugrq(env: dict[str, str]):
    """Run the `thugrq` console script; returns the CompletedProcess."""

    def run(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "thugrq"), *args],
            env=kwargs.pop("env", None) or with_dns(env),
            capture_output=True,
            text=True,
            timeout=300,
            check=check,
            **kwargs,
        )

    return run


@pytest.fixture
def burst_worker(env: dict[str, str]):
    """Run `thugrq-worker --burst` until the queues are empty; returns the CompletedProcess."""

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "thugrq-worker"), "--burst", *args],
            env=with_dns(env),
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run
