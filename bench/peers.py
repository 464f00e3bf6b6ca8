"""The peers section: thugrq against a replica of the seed's ThugD design, in the same run.

The replica (bench/thugd.py) is a Celery 5 worker over the RabbitMQ on 127.0.0.1:5672 whose
prefork pool processes run Thug's API task after task. This module drives it and measures:

- per URL, each of the three pages, one task at a time, in a young pool process (its warm-up
  round dropped, like the per-URL section's);
- URLs per second for the throughput section's batch, with 1 and with 2 pool processes, each
  run on a freshly started worker whose pool processes first analysed each page once (young);
- the pool process's resident size idle, after 1 task, after `age` tasks and at the end;
- ageing: URLs per second (1 process) once that same pool process has run `age` tasks;
- and, for thugrq, a soak of `soak` jobs (the pages in turn, one batch, both workers): each
  worker's idle resident size before and after, and its horses' peaks (harness.PeakSampler).

The run gets a RabbitMQ vhost of its own (`thugrq-bench-PID`, the guest user allowed on it),
deleted at the end even on failure; every Celery worker started here is stopped through its
handle. Without a broker answering on 127.0.0.1:5672, `rabbitmqctl`, or PyPI's `celery`, the
section is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from harness import BENCH, Disturbance, PeakSampler, Stack, _tree_ticks
from pages import PAGES, problem
from thugrq import results, submit

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672
RABBITMQCTL = ("rabbitmqctl", "/usr/sbin/rabbitmqctl")
#: The RabbitMQ user the replica connects as (RabbitMQ lets `guest` in from localhost only).
USER, PASSWORD = "guest", "guest"
INSTALL = (
    "PyPI's celery is not installed: install the benchmark's extra with "
    "`.venv/bin/pip install -e '.[bench]'` (or `.venv/bin/pip install 'celery>=5,<6'`)"
)
TARGETS = {
    "per_url": 1.25,  # thugrq per URL / young ThugD per URL, at most, every page
    "throughput": 0.90,  # thugrq URLs/s / young ThugD URLs/s (1 vs 1, 2 vs 2), at least
    "aged": 1.50,  # thugrq 1 worker URLs/s / ThugD's 1 process after `age` tasks, at least
    "idle_mib": 200,  # thugrq's idle worker after the soak, at most
    "horse_mib": 220,  # thugrq's horse peak during the soak, at most
    "batch": 5.0,  # batch enqueue / RQ one-by-one (the enqueue section's), at least
}
READY_TIMEOUT = 90.0
RESULT_TIMEOUT = 300.0


class PeerError(RuntimeError):
    """An analysis by the replica failed or missed its page's facts: no number is printed."""


class Unavailable(RuntimeError):
    """The section cannot run here (no broker, no rabbitmqctl, no celery): it is skipped."""


# --- what the section needs ----------------------------------------------------------------


def _rabbitmqctl() -> str | None:
    for name in RABBITMQCTL:
        found = shutil.which(name) or (name if os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


def unavailable() -> str | None:
    """Why the section cannot run on this machine, or None."""
    try:
        import celery  # noqa: F401
    except ImportError:
        return INSTALL
    if _rabbitmqctl() is None:
        return "rabbitmqctl not found (PATH, /usr/sbin): the run cannot make a vhost of its own"
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=2).close()
    except OSError as error:
        return f"no RabbitMQ broker answers on {BROKER_HOST}:{BROKER_PORT} ({error})"
    return None


def _ctl(*args: str) -> str:
    command = [_rabbitmqctl() or "rabbitmqctl", "-q", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"{' '.join(command)}: {error}") from error
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(command)}: {(done.stderr or done.stdout).strip()[:300]}")
    return done.stdout


class Vhost:
    """A RabbitMQ vhost of this run's own, with the guest user allowed on it; deleted on exit."""

    def __init__(self) -> None:
        self.name = f"thugrq-bench-{os.getpid()}"

    def __enter__(self) -> Vhost:
        _ctl("add_vhost", self.name)
        try:
            _ctl("set_permissions", "-p", self.name, USER, ".*", ".*", ".*")
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    def delete(self) -> None:
        try:
            _ctl("delete_vhost", self.name)
        except Unavailable as error:
            print(f"peers: could not delete vhost {self.name}: {error}", file=sys.stderr)

    @property
    def url(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@{BROKER_HOST}:{BROKER_PORT}/{self.name}"


def broker_pid() -> int | None:
    """The process listening on the broker's port (RabbitMQ's beam.smp), or None."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == BROKER_PORT:
                return conn.pid
    except psutil.Error:
        pass
    return None


class WithBroker(Disturbance):
    """harness.Disturbance that counts the broker's CPU as this benchmark's: while the replica
    runs, RabbitMQ is part of what is measured, not other load."""

    def __init__(self, broker: int | None) -> None:
        super().__init__()
        self.broker = broker
        self._broker_start = 0

    def _broker_ticks(self) -> int:
        return _tree_ticks(self.broker) if self.broker else 0

    def start(self) -> None:
        super().start()
        self._broker_start = self._broker_ticks()

    def cores(self) -> float:
        wall = time.monotonic() - self._start[0]
        broker = (self._broker_ticks() - self._broker_start) / os.sysconf("SC_CLK_TCK")
        return max(0.0, super().cores() - broker / max(wall, 1e-6))


# --- the replica's worker and its client ----------------------------------------------------


class Peer:
    """One Celery worker of the replica with `concurrency` pool processes, started and stopped
    through its own handle (also registered with the stack, which stops it if all else fails)."""

    serial = 0

    def __init__(self, stack: Stack, broker: str, backend: str, concurrency: int) -> None:
        Peer.serial += 1
        self.stack, self.concurrency = stack, concurrency
        self.name = f"thugd-{Peer.serial}-c{concurrency}@bench"
        self.dir = stack.tmp / "thugd"
        self.dir.mkdir(exist_ok=True)
        self.ready = self.dir / f"ready-{Peer.serial}"
        paths = [str(BENCH)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env = dict(
            stack.env,
            THUGD_BROKER=broker,
            THUGD_BACKEND=backend,
            THUGD_READY=str(self.ready),
            PYTHONPATH=os.pathsep.join(paths),
        )
        self.process: subprocess.Popen | None = None
        self.pool: list[int] = []

    def __enter__(self) -> Peer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        argv = [
            sys.executable, "-m", "celery", "-A", "thugd", "worker", "-Q", "thugd",
            "-P", "prefork", "-c", str(self.concurrency), "-n", self.name, "-l", "WARNING",
        ]
        log = self.stack.exit.enter_context(open(self.stack.tmp / "thugd.log", "ab"))
        self.process = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=log, start_new_session=True, cwd=self.dir
        )
        self.stack.processes.append(self.process)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self.pool = [c.pid for c in psutil.Process(self.process.pid).children()]
            if self.ready.exists() and len(self.pool) == self.concurrency:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise PeerError(f"the ThugD worker {self.name} did not start; see "
                                f"{self.stack.tmp / 'thugd.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for pid in self.pool:  # a pool process that outlived its parent
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def rss(self) -> dict[int, int]:
        """Resident size of each pool process, bytes."""
        return {pid: psutil.Process(pid).memory_info().rss for pid in self.pool}

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every pool process sleeps (its task over, its ack sent)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if all(psutil.Process(p).status() == psutil.STATUS_SLEEPING for p in self.pool):
                    return
            except psutil.NoSuchProcess as error:
                raise PeerError(f"ThugD pool process {error.pid} is gone") from error
            time.sleep(0.005)


class Client:
    """The submitting side: send_task per URL, results read from the Redis backend (its
    pub/sub, no polling), each analysis summarised and checked for its page's facts."""

    def __init__(self, broker: str, backend: str) -> None:
        from celery import Celery

        import thugd

        self.task, self.queue = thugd.TASK, thugd.QUEUE
        self.app = Celery("thugd-client", set_as_current=False)
        self.app.conf.update(thugd.settings(broker, backend))

    def run(self, urls: Sequence[str]) -> list[dict[str, Any]]:
        """All of `urls` sent at once; for each, in order, the pid of the pool process that ran
        it and the seconds its task took in there."""
        sent = [self.app.send_task(self.task, args=[url], queue=self.queue) for url in urls]
        pids = []
        for url, result in zip(urls, sent):
            try:
                answer = result.get(timeout=RESULT_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - the task's failure, re-raised by Celery
                raise PeerError(f"ThugD {url}: {type(error).__name__}: {error}") from error
            reason = problem(url, results.summarize(url, answer["log"] or {}))
            if reason:
                raise PeerError(f"ThugD {url}: {reason}")
            pids.append({"pid": answer["pid"], "seconds": answer["seconds"]})
        return pids

    def close(self) -> None:
        self.app.close()


# --- the measurements ----------------------------------------------------------------------


def _batch(stack: Stack, count: int) -> list[str]:
    return [stack.url(PAGES[i % len(PAGES)].path) for i in range(count)]


def young_per_url_and_ageing(
    stack: Stack, quiet: Any, client: Client, peer: Peer, cfg: dict[str, Any],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """One pool process, from idle to `age` tasks and beyond: per URL while young, its resident
    size on the way, then its throughput once aged."""
    (pool_pid,) = peer.pool
    tasks = 0

    def run(urls: list[str]) -> list[dict[str, Any]]:
        nonlocal tasks
        answers = client.run(urls)
        pids = {answer["pid"] for answer in answers}
        if pids != {pool_pid}:
            raise PeerError(f"ThugD: tasks ran in {pids}, not in pool process {pool_pid}")
        tasks += len(urls)
        return answers

    memory = {"idle": peer.rss()[pool_pid]}
    per_page: dict[str, list[dict[str, Any]]] = {page.name: [] for page in PAGES}
    for rep in range(cfg["reps"] + 1):
        for page in PAGES:
            url = stack.url(page.path)
            if rep == 0:  # warm-up, dropped: the pool process's first analyses
                peer.wait_idle()
                run([url])
                if tasks == 1:
                    peer.wait_idle()
                    memory["after_1"] = peer.rss()[pool_pid]
                continue

            def once(url: str = url) -> dict[str, Any]:
                age = tasks
                started = time.perf_counter()
                (answer,) = run([url])
                return {"seconds": time.perf_counter() - started, "age": age,
                        "in_task": answer["seconds"]}

            per_page[page.name].append(quiet.measure("peers", once, peer.wait_idle))
        log(f"peers: ThugD per-URL round {rep + 1}/{cfg['reps'] + 1}"
            + (" (warm-up)" if rep == 0 else ""))
    young_tasks = tasks

    age, step = cfg["age"], max(cfg["throughput_urls"], 1)
    while tasks < age:
        run(_batch(stack, min(step, age - tasks)))
    peer.wait_idle()
    memory[f"after_{tasks}"] = peer.rss()[pool_pid]
    memory["aged_tasks"] = tasks
    log(f"peers: ThugD pool process aged to {tasks} tasks")

    batch = _batch(stack, cfg["throughput_urls"])
    aged = []

    def timed() -> dict[str, Any]:
        age = tasks
        started = time.perf_counter()
        run(batch)
        return {"urls_per_s": len(batch) / (time.perf_counter() - started), "age": age}

    for rep in range(cfg["throughput_reps"]):
        aged.append(quiet.measure("peers-throughput", timed, peer.wait_idle))
    peer.wait_idle()
    memory["end"] = peer.rss()[pool_pid]
    memory["end_tasks"] = tasks
    log(f"peers: ThugD aged throughput, {len(aged)} runs, pool process at {tasks} tasks")
    return {"per_url": per_page, "young_tasks": young_tasks, "memory": memory, "aged": aged}


def young_throughput(
    stack: Stack, quiet: Any, client: Client, broker: str, backend: str,
    cfg: dict[str, Any], log: Callable[[str], None],
) -> dict[str, list[dict[str, Any]]]:
    """URLs per second for the throughput batch, 1 and 2 pool processes alternating, each run
    on a freshly started worker whose pool processes each analysed the three pages first."""
    batch = _batch(stack, cfg["throughput_urls"])
    raw: dict[str, list[dict[str, Any]]] = {"1": [], "2": []}
    for rep in range(cfg["throughput_reps"]):
        for kind in (("1", "2") if rep % 2 == 0 else ("2", "1")):
            with Peer(stack, broker, backend, int(kind)) as peer:
                client.run(_batch(stack, len(PAGES) * peer.concurrency))  # warm-up

                def timed() -> dict[str, Any]:
                    started = time.perf_counter()
                    client.run(batch)
                    return {"urls_per_s": len(batch) / (time.perf_counter() - started)}

                raw[kind].append(quiet.measure("peers-throughput", timed, peer.wait_idle))
        log(f"peers: ThugD young throughput round {rep + 1}/{cfg['throughput_reps']}")
    return raw


def soak(
    stack: Stack, count: int, queue: str, read_results: Callable, check: Callable,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """`count` thugrq jobs, the pages in turn, one batch to `queue` (both workers serve it):
    each worker's idle resident size before and after, its horses' peaks (VmHWM, sampled)."""
    workers = {name: process.pid for name, process in stack.workers.items()}

    def idle() -> dict[str, int]:
        stack.wait_quiet()
        time.sleep(0.5)
        return {name: psutil.Process(pid).memory_info().rss for name, pid in workers.items()}

    before = idle()
    batch = _batch(stack, count)
    with ExitStack() as samplers:
        sampling = [samplers.enter_context(PeakSampler(pid, 0.002)) for pid in workers.values()]
        started = time.perf_counter()
        submission = submit.enqueue(stack.connection, batch, queues=[queue])
        documents = read_results(stack.connection, [job.id for job in submission.jobs])
        seconds = time.perf_counter() - started
        stack.wait_quiet()
    for url, document in zip(batch, documents):
        check("thugrq (soak)", url, document)
    peaks = [kb * 1024 for sampler in sampling for kb in sampler.peaks.values()]
    after = idle()
    log(f"peers: thugrq soak of {count} jobs in {seconds:.0f} s, {len(peaks)} horses sampled")
    return {"jobs": count, "seconds": seconds, "before": before, "after": after,
            "horse_peaks": peaks}


def run(
    stack: Stack, quiet: Any, cfg: dict[str, Any], log: Callable[[str], None], *,
    queue: str, read_results: Callable, check: Callable,
) -> dict[str, Any]:
    """The whole section; {"skipped": reason} where it cannot run here."""
    reason = unavailable()
    if reason:
        log(f"peers: skipped: {reason}")
        return {"skipped": reason}
    import celery

    quiet.budgets.setdefault("peers", 60.0)
    quiet.budgets.setdefault("peers-throughput", 120.0)
    if "peers-throughput" not in quiet.strict:
        quiet.strict = (*quiet.strict, "peers-throughput")
    backend = stack.redis_url.rsplit("/", 1)[0] + "/2"  # the run's Redis, no worker's database
    data: dict[str, Any] = {"config": dict(cfg), "celery": celery.__version__}
    saved_meter = quiet.meter
    try:
        with Vhost() as vhost:
            data["vhost"] = vhost.name
            data["rabbitmq"] = _ctl("version").strip()
            log(f"peers: RabbitMQ vhost {vhost.name}, results in {backend}")
            quiet.meter = WithBroker(broker_pid())
            client = Client(vhost.url, backend)
            try:
                stack.wait_quiet()
                with Peer(stack, vhost.url, backend, 1) as peer:
                    data |= young_per_url_and_ageing(stack, quiet, client, peer, cfg, log)
                data["throughput"] = young_throughput(
                    stack, quiet, client, vhost.url, backend, cfg, log
                )
            finally:
                client.close()
    except Unavailable as error:
        log(f"peers: skipped: {error}")
        return {"skipped": str(error)}
    finally:
        quiet.meter = saved_meter
    data["soak"] = soak(stack, cfg["soak"], queue, read_results, check, log)
    return data


# --- the table -----------------------------------------------------------------------------


def _calm(runs: Sequence[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
    calm = [r for r in runs if r.get("foreign_cores", 0.0) <= limit]
    return calm if len(calm) >= 2 else list(runs)


def _mib(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def lines(
    raw: dict[str, Any], thugrq: dict[str, Any], limits: dict[str, float],
    verdict: Callable[[bool], str],
) -> list[str]:
    """The section's table lines. `thugrq` holds the figures the other sections measured in
    this run (None where a section did not run): per_url {page: s}, one and two (URLs/s),
    batch (batch over RQ one-by-one); `limits` the disturbance limit of each measurement kind."""

    def unjudged(what: str, section: str) -> str:
        return f"  target {what}: cannot be judged (the {section} section did not run)"

    targets = [
        f"thugrq per URL <= {TARGETS['per_url']:.2f}x young ThugD on every page",
        f"thugrq 1 and 2 workers >= {TARGETS['throughput']:.2f}x young ThugD's URLs/s",
        f"thugrq 1 worker >= {TARGETS['aged']:.2f}x ThugD's URLs/s after "
        f"{raw.get('config', {}).get('age', 200)} tasks in its pool process",
        f"thugrq memory flat over {raw.get('config', {}).get('soak', 500)} jobs (idle worker <= "
        f"{TARGETS['idle_mib']} MiB, horse peak <= {TARGETS['horse_mib']} MiB)",
        f"batch enqueue >= {TARGETS['batch']:.1f}x one-by-one",
    ]
    batch = thugrq.get("batch")
    batch_line = (
        f"  target {targets[4]}: {verdict(batch >= TARGETS['batch'])} ({batch:.2f}x)"
        if batch is not None else unjudged(targets[4], "enqueue")
    )
    if "skipped" in raw:
        return [
            f"Peers (ThugD replica): skipped: {raw['skipped']}",
            *(f"  target {t}: cannot be judged (the peers section was skipped)" for t in targets[:4]),
            batch_line,
            "",
        ]
    cfg = raw["config"]
    out = [
        f"Peers: a ThugD-design replica (Celery {raw['celery']} prefork pool over RabbitMQ "
        f"{raw['rabbitmq']}, acks late, prefetch 2, Redis results; Thug runs inside the reused "
        "pool process)",
        f"  per URL, s (median of the undisturbed runs among {cfg['reps']}; one task at a time; "
        f"ThugD's pool process young: tasks 2 to {raw['young_tasks']})",
        f"  {'page':16}{'ThugD':>8}{'in task':>9}{'thugrq':>8}{'thugrq/ThugD':>14}",
    ]
    per_url = thugrq.get("per_url")
    worst = 0.0
    for page in PAGES:
        calm = _calm(raw["per_url"][page.name], limits["peers"])
        ours = statistics.median(m["seconds"] for m in calm)
        row = f"  {page.name:16}{ours:8.3f}{statistics.median(m['in_task'] for m in calm):9.3f}"
        if per_url:
            ratio = per_url[page.name] / ours
            worst = max(worst, ratio)
            out.append(f"{row}{per_url[page.name]:8.3f}{ratio:13.2f}x")
        else:
            out.append(f"{row}{'-':>8}{'-':>14}")
    out.append(
        f"  target {targets[0]}: {verdict(worst <= TARGETS['per_url'])} (worst {worst:.2f}x)"
        if per_url else unjudged(targets[0], "per-url")
    )

    limit = limits["peers-throughput"]
    young = {k: statistics.median(r["urls_per_s"] for r in _calm(v, limit))
             for k, v in raw["throughput"].items()}
    aged_runs = raw["aged"]
    aged = statistics.median(r["urls_per_s"] for r in _calm(aged_runs, limit))
    ages = [r["age"] for r in aged_runs]
    out += [
        f"  URLs/s, {cfg['throughput_urls']} URLs, the three pages in turn (median of "
        f"{cfg['throughput_reps']}; ThugD young: a fresh worker each run, its pool warmed)",
        f"  {'':34}{'ThugD':>8}{'thugrq':>8}{'thugrq/ThugD':>14}",
    ]
    rows = (
        ("1 process / 1 worker, young", young["1"], thugrq.get("one")),
        ("2 processes / 2 workers, young", young["2"], thugrq.get("two")),
        (f"1 process after {min(ages)}" + (f"-{max(ages)}" if max(ages) > min(ages) else "")
         + " tasks", aged, thugrq.get("one")),
    )
    for label, theirs, ours in rows:
        if ours is None:
            out.append(f"  {label:34}{theirs:8.2f}{'-':>8}{'-':>14}")
        else:
            out.append(f"  {label:34}{theirs:8.2f}{ours:8.2f}{ours / theirs:13.2f}x")
    if thugrq.get("one") is None:
        out += [unjudged(targets[1], "throughput"), unjudged(targets[2], "throughput")]
    else:
        one, two = thugrq["one"] / young["1"], thugrq["two"] / young["2"]
        ok = one >= TARGETS["throughput"] and two >= TARGETS["throughput"]
        out += [
            f"  target {targets[1]}: {verdict(ok)} (1: {one:.2f}x, 2: {two:.2f}x)",
            f"  target {targets[2]}: {verdict(thugrq['one'] / aged >= TARGETS['aged'])} "
            f"({thugrq['one'] / aged:.2f}x)",
        ]

    memory = raw["memory"]
    aged_key = f"after_{memory['aged_tasks']}"
    out.append(
        f"  ThugD pool process, RSS: idle {_mib(memory['idle'])}, after 1 task "
        f"{_mib(memory['after_1'])}, after {memory['aged_tasks']} {_mib(memory[aged_key])}, "
        f"after {memory['end_tasks']} {_mib(memory['end'])}"
    )
    soaked = raw["soak"]
    peaks = soaked["horse_peaks"]
    idle_after = max(soaked["after"].values())
    peak = max(peaks) if peaks else float("inf")
    if peaks:
        tenth = max(1, len(peaks) // 10)
        horses = (
            f"horse peak {_mib(peak)} ({len(peaks)} horses; median of the first {tenth} "
            f"{_mib(statistics.median(peaks[:tenth]))}, of the last {tenth} "
            f"{_mib(statistics.median(peaks[-tenth:]))})"
        )
    else:
        horses = "no horse sampled"
    flat = idle_after <= TARGETS["idle_mib"] * 2**20 and peak <= TARGETS["horse_mib"] * 2**20
    out += [
        f"  thugrq soak, {soaked['jobs']} jobs (2 workers, the pages in turn, "
        f"{soaked['jobs'] / soaked['seconds']:.2f} URLs/s): idle workers' RSS before "
        f"{', '.join(_mib(v) for v in soaked['before'].values())}, after "
        f"{', '.join(_mib(v) for v in soaked['after'].values())}; {horses}",
        f"  target {targets[3]}: {verdict(flat)} (idle {_mib(idle_after)}, horse peak "
        f"{_mib(peak)})",
        batch_line,
        "",
    ]
    return out
