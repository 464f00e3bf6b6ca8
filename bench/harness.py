"""What the benchmarks run on: a private Redis, the test site, thugrq workers, the bare runner.

Everything listens on or talks to 127.0.0.1 only. Redis is a private `redis-server` on a free
port in a temporary directory (never the machine's Redis); the workers serve explicit queues
(`--queue`, so they never geolocate) and have THUGRQ_DNS pointed at a closed loopback port as a
safety net; proxy variables are removed so that Thug's requests go straight to 127.0.0.1.
Every process started here is stopped by its own handle when the stack closes.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import redis

from thugrq.process import free_port
from thugrq.redis_server import redis_server_binary, start_redis

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = Path(sys.executable).parent
READY_TIMEOUT = 60.0

#: Variables that could send Thug's traffic (or redis-py's) anywhere but 127.0.0.1.
DROPPED_VARIABLES = (
    "http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY", "NO_PROXY",
    "REDIS_URL", "THUGRQ_REDIS_URL", "THUGRQ_DNS", "THUGRQ_HOME", "THUGRQ_ALLOW_PRIVATE_TARGETS",
)


def closed_loopback_port() -> int:
    """A loopback UDP port with nothing bound to it: DNS queries sent there fail at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0))
    versions = {}
    for name in ("thug", "rq", "redis"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - informative only
            versions[name] = "?"
    server = subprocess.run(
        [redis_server_binary(), "--version"], capture_output=True, text=True
    ).stdout
    match = re.search(r"v=(\S+)", server)
    return {
        "nproc": nproc,
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "thug": versions["thug"],
        "rq": versions["rq"],
        "redis_py": versions["redis"],
        "redis_server": match.group(1) if match else "?",
    }


def proc_children(pid: int) -> list[int]:
    """Direct children of `pid`'s main thread (the one that forks horses)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return [child.pid for child in _children_psutil(pid)]


def horses(worker_pid: int) -> list[int]:
    """The work horses among a worker's children: RQ's horse leads its own process group
    (os.setpgrp right after the fork); RQ's scheduler, also a child, does not."""
    found = []
    for child in proc_children(worker_pid):
        try:
            if os.getpgid(child) == child:
                found.append(child)
        except ProcessLookupError:
            pass
    return found


def _children_psutil(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.Error:
        return []


def status_kib(pid: int, field: str) -> int | None:
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM), or None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    """CPU time the whole machine spent busy (steal included: time taken from this VM)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return user + nice + system + irq + softirq + steal


def _tree_ticks(root: int) -> int:
    """CPU time of `root` and all its live descendants, with what their reaped children used."""
    pids = [root] + [child.pid for child in _descendants(root)]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            pass
    return total


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


class Disturbance:
    """How much CPU processes outside this benchmark took while something was measured.

    This machine may be shared; a measurement taken while something else ran is not one of
    thugrq. `start()` then `cores()`: the CPU other processes used meanwhile, in cores (busy
    time of the whole machine minus that of this process tree, over the wall time).
    """

    def __init__(self) -> None:
        self.root = os.getpid()
        self._start = (0.0, 0, 0)

    def start(self) -> None:
        self._start = (time.monotonic(), _busy_ticks(), _tree_ticks(self.root))

    def cores(self) -> float:
        wall = time.monotonic() - self._start[0]
        busy = _busy_ticks() - self._start[1]
        ours = _tree_ticks(self.root) - self._start[2]
        return max(0.0, (busy - ours) / CLOCK_TICKS / max(wall, 1e-6))


class PeakSampler:
    """Samples the peak resident size (VmHWM) of a worker's horses, every `interval` s.

    VmHWM is the kernel's high-water mark, so a sample taken any time before the child exits
    sees every earlier peak; only growth in the last interval of a child's life can be missed.
    """

    def __init__(self, parent: int, interval: float = 0.001) -> None:
        self.parent, self.interval = parent, interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for child in horses(self.parent):
                hwm = status_kib(child, "VmHWM")
                if hwm is not None and hwm > self.peaks.get(child, 0):
                    self.peaks[child] = hwm
            time.sleep(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Stack:
    """The private Redis, the site, the bare runner and thugrq workers, for one benchmark run."""

    def __init__(self, bare: bool = True) -> None:
        #: Whether to start the bare runner (bench/bare.py); bench/sizing.py has no use for it.
        self.want_bare = bare
        self.exit = ExitStack()
        self.processes: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="thugrq-bench-"))
        self.workers: dict[str, subprocess.Popen] = {}

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        port = free_port()
        redis_process = start_redis(port, self.tmp / "redis", persist=False)
        self.processes.append(redis_process)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        #: A second database of the same Redis for the enqueue benchmarks: no worker serves it.
        self.enqueue_url = f"redis://127.0.0.1:{port}/1"
        self.connection = redis.Redis.from_url(self.redis_url)
        self.env = self._child_env()

        site = self._popen([sys.executable, str(BENCH / "serve.py")], "site", stdout=subprocess.PIPE)
        line = site.stdout.readline() if site.stdout else b""
        if not line.strip().isdigit():
            raise RuntimeError(f"the test site did not start; see {self.tmp / 'site.log'}")
        self.site_port = int(line)
        if not self.want_bare:
            return

        self.bare = self._popen(
            [sys.executable, str(BENCH / "bare.py")], "bare",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        if json.loads(self.bare.stdout.readline() or b"{}").get("ready") is not True:
            raise RuntimeError(f"the bare runner did not start; see {self.tmp / 'bare.log'}")

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in reversed(self.processes):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        self.exit.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_VARIABLES}
        env.update(
            THUGRQ_REDIS_URL=self.redis_url,
            THUGRQ_HOME=str(self.tmp / "thugrq-home"),
            THUGRQ_DNS=f"127.0.0.1:{closed_loopback_port()}",
            THUGRQ_DNS_TIMEOUT="0.2",
            # The test site is on loopback, which workers refuse unless allowed; allow loopback
            # and nothing else (read by the workers and by the bare runner's context).
            THUGRQ_ALLOW_PRIVATE_TARGETS="127.0.0.0/8",
            NO_PROXY="*",
            no_proxy="*",
            PYTHONUNBUFFERED="1",
        )
        return env

    def _popen(self, argv: list[str], log_name: str, **kwargs: Any) -> subprocess.Popen:
        log = self.exit.enter_context(open(self.tmp / f"{log_name}.log", "ab"))
        kwargs.setdefault("stdout", log)
        process = subprocess.Popen(
            argv, env=self.env, stderr=log, start_new_session=True, cwd=self.tmp, **kwargs
        )
        self.processes.append(process)
        return process

    # --- the site --------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.site_port}{path}"

    # --- workers ---------------------------------------------------------------------------

    def start_worker(self, name: str, queues: list[str]) -> int:
        """Start `thugrq-worker --queue ...` and wait until it is idle; returns its pid."""
        pid = self.launch_worker(name, queues)
        self.wait_idle([name])
        return pid

    def launch_worker(self, name: str, queues: list[str]) -> int:
        """Start `thugrq-worker --queue ...` without waiting for it; returns its pid."""
        argv = [str(BIN / "thugrq-worker"), "--name", name]
        for queue in queues:
            argv += ["--queue", queue]
        process = self._popen(argv, f"worker-{name}")
        self.workers[name] = process
        return process.pid

    def wait_idle(self, names: list[str], timeout: float = READY_TIMEOUT) -> None:
        """Wait until each named worker has registered and reports itself idle."""
        deadline = time.monotonic() + timeout
        for name in names:
            process = self.workers[name]
            while self.connection.hget(f"rq:worker:{name}", "state") != b"idle":
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {name} did not start; see {self.tmp}/worker-{name}.log")
                time.sleep(0.05)

    def wait_quiet(self, timeout: float = 30.0) -> None:
        """Wait until no worker has a horse and every worker is back to idle: a quiet machine."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            busy = any(horses(p.pid) for p in self.workers.values()) or any(
                self.connection.hget(f"rq:worker:{name}", "state") != b"idle"
                for name in self.workers
            )
            if not busy:
                return
            time.sleep(0.005)
        states = {name: self.connection.hget(f"rq:worker:{name}", "state") for name in self.workers}
        running = {name: horses(p.pid) for name, p in self.workers.items()}
        raise RuntimeError(f"workers still busy after {timeout} s: states {states}, horses {running}")

    # --- the bare limit --------------------------------------------------------------------

    def bare_loop(self, urls: list[str]) -> list[dict[str, Any]]:
        """All of `urls` through the bare runner back to back; its answers, in order."""
        assert self.bare.stdin and self.bare.stdout
        self.bare.stdin.write(b"".join(url.encode() + b"\n" for url in urls))
        self.bare.stdin.flush()
        answers = []
        for _ in urls:
            answer = self.bare.stdout.readline()
            if not answer:
                raise RuntimeError(f"the bare runner died; see {self.tmp / 'bare.log'}")
            answers.append(json.loads(answer))
        return answers

    def bare_run(self, url: str) -> dict[str, Any]:
        assert self.bare.stdin and self.bare.stdout
        self.bare.stdin.write(url.encode() + b"\n")
        self.bare.stdin.flush()
        answer = self.bare.stdout.readline()
        if not answer:
            raise RuntimeError(f"the bare runner died; see {self.tmp / 'bare.log'}")
        return json.loads(answer)
