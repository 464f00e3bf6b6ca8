"""Process supervision for the local stack: pid files, a lock, background processes, and
stopping them with everything they forked.

What a supervised process is matters to whoever supervises it (`thugrq.stack`); this module
only knows processes, files and loopback ports. A pid is trusted only together with the
command line it is expected to have, since a pid file can outlive its process and the pid be
reused by an unrelated one.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

#: How long a background process may take to be ready.
STARTUP_TIMEOUT = 30.0
#: How long a process may take to exit after SIGTERM (cold) before it is killed.
EXIT_TIMEOUT = 10.0
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def running(process: psutil.Process) -> bool:
    """Whether the process still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_with(pid: int | None, commands: Iterable[str]) -> psutil.Process | None:
    """The running process `pid`, if its command line names one of `commands`."""
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        command = " ".join(process.cmdline())
    except psutil.Error:
        return None
    if not running(process) or not any(name in command for name in commands):
        return None
    return process


def process_of(pid_file: Path, commands: Iterable[str]) -> psutil.Process | None:
    """The running process that `pid_file` names, if its command line names one of `commands`."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return process_with(pid, commands)


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n")


@contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created with its directory), across processes."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spawn(
    module_args: list[str], log_path: Path, pid_file: Path, environment: dict[str, str]
) -> subprocess.Popen:
    """Start `python -m MODULE ARGS` in the background, in its own session, logging to
    `log_path`, with `environment` added to this one's; its pid goes to `pid_file`.

    Secrets such as a Redis URL go in `environment`, never in the arguments: `ps` shows those.
    """
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **environment},
            start_new_session=True,
        )
    write_pid(pid_file, process.pid)
    return process


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


def terminate(processes: Iterable[psutil.Process]) -> None:
    """SIGTERM the processes, then SIGKILL those still running `EXIT_TIMEOUT` later."""
    alive = [process for process in processes if running(process)]
    send(alive, signal.SIGTERM)
    kill_all(wait_gone(alive, EXIT_TIMEOUT))


def stop_warm(processes: Iterable[psutil.Process], grace: float) -> None:
    """Stop RQ workers and all they forked: SIGTERM asks for a warm shutdown (a busy worker
    finishes its job, if it can within `grace` seconds); a second SIGTERM is the cold
    shutdown, which kills the job; what is still left after that is killed."""
    workers = list(processes)
    everyone = family(workers)
    asked = time.monotonic()
    send(workers, signal.SIGTERM)
    alive = wait_gone(workers, grace)
    if alive:
        time.sleep(max(0.0, 1.1 - (time.monotonic() - asked)))  # RQ ignores a repeat within 1 s
        send(alive, signal.SIGTERM)
        alive = wait_gone(alive, EXIT_TIMEOUT)
    kill_all(family(alive) + everyone)
