"""The embedded local stack behind `thugrq up`, `thugrq down` and `./bin/run URL`.

The stack is a Redis, background workers serving `generic` and the dashboard, all on this
machine. When no Redis is configured (no --redis-url, THUGRQ_REDIS_URL or REDIS_URL), thugrq
starts a Redis of its own on 127.0.0.1 (`thugrq.redis_server`), with its data under the user's
data directory, so it never touches another Redis on this machine; it keeps every write in its
append-only file before it answers, so a Redis killed outright is started again by the next `up`
with every job it acknowledged. `up` starts whatever is
missing and leaves it running; `down` stops it all. The processes are supervised through
`thugrq.process`; what they did is told through a `report` callback (the CLI prints it).

Everything lives in `state_dir()`:

    redis.url, redis.pid, redis/   the embedded Redis (its append-only file and redis.log)
    stack.url                      the Redis that the workers and the dashboard serve
    worker-N.pid, worker-N.log     worker number N
    dashboard.pid, dashboard.url, dashboard.log
    stack.lock                     held while `up` or `down` runs, so that two never race
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

from thugrq import config, defaults, process
from thugrq.exceptions import ConfigError
from thugrq.process import LOOPBACK, STARTUP_TIMEOUT
from thugrq.redis_server import start_redis
from thugrq.worker import ThugrqWorker

#: What reports what the stack did, one message at a time (for the user).
Report = Callable[[str], None]

#: The modules the stack runs as `python -m MODULE`.
WORKER_MODULE = "thugrq.cli.worker"
DASHBOARD_MODULE = "thugrq.cli.dashboard"
#: What a thugrq worker's command line names: the stack's module, or `thugrq-worker`.
WORKER_COMMANDS = (WORKER_MODULE, "thugrq-worker")
REDIS_COMMANDS = ("redis-server",)


def quiet(message: str) -> None:
    """Report nothing."""


def state_dir() -> Path:
    """Where the local stack keeps its Redis data, pid files and logs."""
    if os.environ.get("THUGRQ_HOME"):
        return Path(os.environ["THUGRQ_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "thugrq"


@dataclass(frozen=True)
class Stack:
    """The local stack as `up` left it."""

    redis_url: str
    workers: list[int]
    dashboard_url: str
    directory: Path


def is_embedded(connection: redis.Redis) -> bool:
    """Whether this Redis is the embedded one (its files in our directory), and not another
    that took its port since."""
    try:
        directory = connection.config_get("dir").get("dir")
    except redis.exceptions.RedisError:
        return False
    return bool(directory) and Path(directory).resolve() == (state_dir() / "redis").resolve()


def ensure_redis(explicit: str | None = None, report: Report = quiet) -> str:
    """The URL of the configured Redis (`explicit`, then the environment), or of the embedded
    one, started if needed."""
    if explicit or config.redis_url_configured():
        url = config.redis_url(explicit)
        config.connect(url)
        return url
    url_file = state_dir() / "redis.url"
    if url_file.exists():
        url = url_file.read_text().strip()
        try:
            if is_embedded(config.connect(url)):
                return url
        except ConfigError:
            pass
    port = process.free_port()
    server = start_redis(port, state_dir() / "redis", persist=True)
    url = f"redis://{LOOPBACK}:{port}/0"
    url_file.write_text(url + "\n")
    process.write_pid(state_dir() / "redis.pid", server.pid)
    report(f"started the embedded Redis at {url} (data in {state_dir() / 'redis'})")
    return url


def worker_process(worker: ThugrqWorker) -> psutil.Process | None:
    """The process of a registered worker of this host, if it is still a thugrq worker (one
    killed outright stays registered a while, and its pid may be another's by now)."""
    if worker.hostname != socket.gethostname():
        return None
    return process.process_with(worker.pid, WORKER_COMMANDS)


def live_workers(connection: redis.Redis) -> list[ThugrqWorker]:
    """Registered workers serving `generic` that are alive (checked by process on this host,
    trusted on others)."""
    host = socket.gethostname()
    return [
        worker
        for worker in ThugrqWorker.all(connection=connection)
        if config.GENERIC_QUEUE in worker.queue_names()
        and (worker.hostname != host or worker_process(worker) is not None)
    ]


def _worker_pid_files() -> list[Path]:
    return sorted(state_dir().glob("worker-*.pid"), key=lambda path: _slot(path) or 0)


def _slot(pid_file: Path) -> int | None:
    number = pid_file.stem.removeprefix("worker-")
    return int(number) if number.isdigit() else None


def _spawn(module_args: list[str], name: str, redis_url: str) -> tuple[subprocess.Popen, Path]:
    """Start `python -m MODULE ARGS` on `redis_url` as NAME.pid, logging to NAME.log."""
    log_path = state_dir() / f"{name}.log"
    started = process.spawn(
        module_args, log_path, state_dir() / f"{name}.pid", {"THUGRQ_REDIS_URL": redis_url}
    )
    return started, log_path


def ensure_workers(redis_url: str, count: int, report: Report = quiet) -> list[int]:
    """Have at least `count` of the stack's workers running on `redis_url`; returns their pids.

    Workers are numbered: worker N has worker-N.pid and worker-N.log. A worker started here
    counts once it is registered in Redis, ready for jobs.
    """
    started: dict[int, tuple[subprocess.Popen, Path]] = {}
    for slot in range(1, count + 1):
        if process.process_of(state_dir() / f"worker-{slot}.pid", WORKER_COMMANDS):
            continue
        # `generic` only: the local stack asks no DNS service where this host is.
        worker, log_path = _spawn(
            [WORKER_MODULE, "--queue", config.GENERIC_QUEUE], f"worker-{slot}", redis_url
        )
        started[worker.pid] = (worker, log_path)
    connection = config.connect(redis_url)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while started:
        registered = {worker.pid for worker in ThugrqWorker.all(connection=connection)}
        for pid, (worker, log_path) in list(started.items()):
            if pid in registered:
                report(f"started a worker (log: {log_path})")
                del started[pid]
            elif worker.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"the worker did not start; see {log_path}")
        time.sleep(0.2)
    running = (process.process_of(path, WORKER_COMMANDS) for path in _worker_pid_files())
    return [found.pid for found in running if found]


def _dashboard_answers(port: int) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def ensure_dashboard(redis_url: str, port: int | None = None, report: Report = quiet) -> str:
    """The running dashboard's address, after starting it if needed.

    With `port`, the dashboard must be on that port (a running one elsewhere is moved there).
    Without, a running one is kept, and a new one takes THUGRQ_DASHBOARD_PORT or 9181, or a
    free port when that one is taken.
    """
    url_file = state_dir() / "dashboard.url"
    current = process.process_of(state_dir() / "dashboard.pid", (DASHBOARD_MODULE,))
    if current and url_file.exists():
        url = url_file.read_text().strip()
        if port is None or url.endswith(f":{port}/"):
            return url
    if current:
        stop_dashboard()
    if port is None:
        port = config.dashboard_port()
        if not process.port_is_free(port):
            taken, port = port, process.free_port()
            report(f"port {taken} is taken: the dashboard uses port {port}")
    elif not process.port_is_free(port):
        raise ConfigError(f"cannot serve the dashboard on port {port}: the port is in use")
    dashboard, log_path = _spawn(
        [DASHBOARD_MODULE, "--bind", LOOPBACK, "--port", str(port)], "dashboard", redis_url
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _dashboard_answers(port):
        if dashboard.poll() is not None or time.monotonic() > deadline:
            dashboard.kill()
            raise ConfigError(f"the dashboard did not start; see {log_path}")
        time.sleep(0.1)
    url = f"http://{LOOPBACK}:{port}/"
    url_file.write_text(url + "\n")
    report(f"started the dashboard at {url} (log: {log_path})")
    return url


def running_dashboard(redis_url: str) -> str | None:
    """The address of the stack's dashboard if it runs and serves the Redis at `redis_url`
    (the stack's `stack.url`), else None. Reads the state files only: it starts nothing."""
    try:
        served = (state_dir() / "stack.url").read_text().strip()
        url = (state_dir() / "dashboard.url").read_text().strip()
    except OSError:
        return None
    if served != redis_url:
        return None
    if not process.process_of(state_dir() / "dashboard.pid", (DASHBOARD_MODULE,)):
        return None
    return url or None


def up(
    workers: int = 1,
    dashboard_port: int | None = None,
    redis_url: str | None = None,
    report: Report = quiet,
) -> Stack:
    """Start what is missing of the local stack: Redis, `workers` workers, the dashboard.

    Idempotent: what already runs is kept (and never more workers stopped than started).
    Workers and a dashboard left serving another Redis than this one are stopped first.
    """
    with process.locked(state_dir() / "stack.lock"):
        url = ensure_redis(redis_url, report)
        served = state_dir() / "stack.url"
        if served.exists() and served.read_text().strip() != url:
            _stop_workers(defaults.STOP_GRACE)
            stop_dashboard()
        # Readable by the user alone: a configured URL may hold a password.
        descriptor = os.open(served, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w") as handle:
            handle.write(url + "\n")
        pids = ensure_workers(url, workers, report)
        dashboard_url = ensure_dashboard(url, dashboard_port, report)
        return Stack(url, pids, dashboard_url, state_dir())


def stop_dashboard() -> bool:
    """Stop the stack's dashboard; whether one was running."""
    dashboard = process.process_of(state_dir() / "dashboard.pid", (DASHBOARD_MODULE,))
    for name in ("dashboard.pid", "dashboard.url"):
        (state_dir() / name).unlink(missing_ok=True)
    if not dashboard:
        return False
    process.terminate([dashboard])
    return True


def _stop_workers(grace: float, extra: list[psutil.Process] | None = None) -> int:
    """Stop the stack's workers (and `extra` ones) with their analyses, warm first (see
    `process.stop_warm`); returns how many were running."""
    workers = {worker.pid: worker for worker in extra or ()}
    for pid_file in _worker_pid_files():
        worker = process.process_of(pid_file, WORKER_COMMANDS)
        if worker:
            workers[worker.pid] = worker
        pid_file.unlink(missing_ok=True)
    if workers:
        process.stop_warm(workers.values(), grace)
    return len(workers)


def _stop_embedded_redis() -> bool:
    """Shut the embedded Redis down (saving its data); whether it was running."""
    url_file, pid_file = state_dir() / "redis.url", state_dir() / "redis.pid"
    server = process.process_of(pid_file, REDIS_COMMANDS)
    if url_file.exists():
        try:
            connection = config.connect(url_file.read_text().strip())
            if is_embedded(connection):
                server = server or psutil.Process(int(connection.info("server")["process_id"]))
                connection.shutdown(save=True)
        except (ConfigError, redis.exceptions.RedisError, psutil.Error, KeyError):
            pass
    url_file.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)
    if not server:
        return False
    process.terminate(process.wait_gone([server], process.EXIT_TIMEOUT))  # Redis saves on SIGTERM
    return True


def down(grace: float = defaults.STOP_GRACE) -> list[str]:
    """Stop the local stack: the dashboard, the workers, the embedded Redis (its data stays).

    Workers of this host registered in the embedded Redis are stopped too (one started by
    hand, say). A Redis thugrq did not start is left alone. Returns what was stopped.
    """
    with process.locked(state_dir() / "stack.lock"):
        stopped = []
        if stop_dashboard():
            stopped.append("the dashboard")
        extra: list[psutil.Process] = []
        url_file = state_dir() / "redis.url"
        if url_file.exists():
            try:
                registered = live_workers(config.connect(url_file.read_text().strip()))
            except ConfigError:
                registered = []
            extra = [found for found in map(worker_process, registered) if found]
        count = _stop_workers(grace, extra)
        if count:
            stopped.append(f"{count} worker(s)")
        if _stop_embedded_redis():
            stopped.append("the embedded Redis")
        (state_dir() / "stack.url").unlink(missing_ok=True)
        return stopped
