"""The harness of DESIGN.md: a private Redis, a test site on 127.0.0.1, real worker processes.

Nothing here talks to a Redis the user runs: each session starts its own `redis-server` on a
free port in a temporary directory, and every test starts with an empty database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from rq import Worker
from rq.serializers import JSONSerializer

from tests.dns_standin import DnsStandIn
from tests.site import Site
from thugrq.process import free_port
from thugrq.redis_server import start_redis

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("THUGRQ_REQUIRE_ALL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Under THUGRQ_REQUIRE_ALL=1 (CI) a skipped test counts as failed: nothing may go untested."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)  # for fixtures that act on a failure
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
    port = free_port()
    process = start_redis(port, tmp_path_factory.mktemp("redis"), persist=False)
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
    """Environment for thugrq processes: the private Redis, a private THUGRQ_HOME, and workers
    allowed to analyse the test site on 127.0.0.1 (THUGRQ_ALLOW_PRIVATE_TARGETS=1).

    THUGRQ_DNS is taken when a process starts (see `with_dns`), so a `cymru` stand-in applies
    whatever order the fixtures were set up in."""
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    environment["THUGRQ_REDIS_URL"] = redis_url
    environment["THUGRQ_HOME"] = str(tmp_path / "thugrq-home")
    environment["THUGRQ_ALLOW_PRIVATE_TARGETS"] = "1"
    # Most tests start a worker for one or two analyses, where the warm-up (about a second)
    # costs more than it saves; tests/test_warm.py runs workers warm, as they run by default.
    environment["THUGRQ_WARM_UP"] = "0"
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
    default_env = env

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "thugrq-worker"), "--burst", *args],
            env=with_dns(env or default_env),
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


@pytest.fixture
def background_worker(env: dict[str, str]):
    """Start `thugrq-worker ARGS...` in the background; stopped (warm, then killed) after the test."""
    started: list[subprocess.Popen] = []

    def start(*args: str, environment: dict[str, str] | None = None) -> subprocess.Popen:
        process = subprocess.Popen(
            [str(BIN / "thugrq-worker"), *args], env=environment or with_dns(env),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        started.append(process)
        return process

    yield start
    stop_all(started)


def stop_all(processes: list[subprocess.Popen]) -> None:
    """Warm shutdown of every process at once (SIGTERM), then SIGKILL those still running."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    """The first truthy value of `predicate()`, polled until `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def wait_listening(
    host: str, port: int, process: subprocess.Popen, log: Path, timeout: float = 30
) -> None:
    """Wait until something accepts connections on host:port (a loopback address); fail with
    the log if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"nothing listens on port {port}:\n{log.read_text()}")
            time.sleep(0.1)


@pytest.fixture
def dashboard(env: dict[str, str], tmp_path: Path):
    """Start `thugrq dashboard ARGS...` on a free port (the private Redis); returns its address
    on 127.0.0.1, or [::1] for `--bind ::1`. Every dashboard started is stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(*args: str, environment: dict[str, str] | None = None) -> str:
        host = "::1" if "::1" in args else "127.0.0.1"
        port = free_port()
        log = tmp_path / f"dashboard-{port}.log"
        with open(log, "w") as handle:
            process = subprocess.Popen(
                [str(BIN / "thugrq"), "dashboard", "--port", str(port), *args],
                env=environment or env, stdout=handle, stderr=subprocess.STDOUT,
            )
        started.append(process)
        wait_listening(host, port, process, log)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


@dataclass(frozen=True)
class BusyWorker:
    name: str
    job_id: str


def stop_worker(process: subprocess.Popen) -> None:
    """RQ's cold shutdown (a second SIGTERM kills the analysis), then SIGKILL if need be."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        time.sleep(1.1)  # RQ ignores a second signal within a second
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def busy_worker(env: dict[str, str], connection: redis.Redis, thugrq, site, tmp_path: Path):
    """A background worker for Italy (`IT.host.pid`, queues IT and generic), busy analysing a
    page of the test site that loads a script for 30 s; stopped at the end."""
    job_id = thugrq(
        "enqueue", site.url("/slow-script"), "--connect-timeout", "60", check=True
    ).stdout.strip()
    log = tmp_path / "busy-worker.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [str(BIN / "thugrq-worker"), "--country", "IT", "--queue", "IT", "--queue", "generic"],
            env=with_dns(env), stdout=handle, stderr=subprocess.STDOUT,
        )
    name = f"IT.{socket.gethostname()}.{process.pid}"
    deadline = time.monotonic() + 60
    while True:
        workers = Worker.all(connection=connection, serializer=JSONSerializer)
        if any(w.name == name and w.get_current_job_id() == job_id for w in workers):
            break
        if process.poll() is not None or time.monotonic() > deadline:
            stop_worker(process)
            pytest.fail(f"the worker never took job {job_id}:\n{log.read_text()}")
        time.sleep(0.1)
    yield BusyWorker(name=name, job_id=job_id)
    stop_worker(process)
