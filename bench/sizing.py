"""How much one Redis carries: commands, bytes and Redis CPU per job and per idle worker,
measured with Redis's own counters, and scaled on paper to 1,000 workers and 1,000,000 URLs a
day.

    .venv/bin/python bench/sizing.py                  # about 6 minutes: 20 idle workers, 90 s windows
    .venv/bin/python bench/sizing.py --quick          # a smoke run: 4 workers, small counts, 30 s windows
    .venv/bin/python bench/sizing.py --json raw.json  # also keep every counter delta

A private `redis-server` (thugrq.redis_server.start_redis, free port, temporary directory, no
persistence: never the machine's Redis), the test site (bench/serve.py) on 127.0.0.1, and real
`thugrq-worker --queue IT --queue generic` processes (bench.harness.Stack: loopback only, no
geolocation). Every figure is a difference of two readings of `INFO commandstats stats cpu
clients` (calls per command, total_net_input_bytes / total_net_output_bytes, the server's main
thread CPU), less what the readings themselves cost (measured first); the script's own waiting
is one ZCOUNT a poll, a command nothing in RQ or thugrq sends, subtracted call for call and
byte for byte. MONITOR is never used. Phases, in order:

1. Redis alone (no client but this script): the server's own CPU per second (its timers).
2. Enqueue N URLs with no worker running: one `submit.enqueue` call per URL, then one batch.
3. One worker, idle, for a window: the fixed cost of a fleet of one.
4. The same worker busy: N jobs of the plain page (`/chain/final`), enqueued in one batch;
   everything until the last one is in the finished registry (dequeue, started and finished
   bookkeeping, heartbeats, the result, the group's tally, the scheduler child meanwhile).
5. A client reading every result back as `thugrq result ID` does (jobs.result).
6. Slow jobs (`/paced?seconds=S`): the extra commands of a job per second it runs (the
   heartbeats of a busy worker).
7. K workers, idle, for the same window: with step 3, a fixed part plus a part per worker.

Then the table: per job, per idle worker, and on paper 1,000 workers plus 1,000,000 URLs a
day as a share of one Redis core (Redis runs commands on one thread). Progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
VENV_PYTHON = BENCH.parent / ".venv" / "bin" / "python"
if sys.prefix == sys.base_prefix and VENV_PYTHON.exists():  # not in a venv: use the project's
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
sys.path.insert(0, str(BENCH))

import redis  # noqa: E402
from rq.registry import FailedJobRegistry, FinishedJobRegistry  # noqa: E402

from harness import Disturbance, Stack, machine  # noqa: E402
from thugrq import config, fleet, submit  # noqa: E402
from thugrq import job as jobs  # noqa: E402

#: The queues every worker here serves: a country and generic, like a fleet in one country.
QUEUES = ["IT", config.GENERIC_QUEUE]
BUSY_QUEUE = config.GENERIC_QUEUE
URLS_PER_DAY = 1_000_000
FLEET = 1_000
#: What the script sends between two readings (its own INFO and polls), never counted.
OWN_COMMANDS = ("info", "zcount")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def resp_length(*args: str) -> int:
    """Bytes of a command as redis-py sends it (RESP array of bulk strings)."""
    encoded = [str(a).encode() for a in args]
    return len(f"*{len(encoded)}\r\n") + sum(len(f"${len(e)}\r\n") + len(e) + 2 for e in encoded)


class Meter:
    """Readings of Redis's counters, and the differences between two of them."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self.reading_cost = {"in": 0, "out": 0}
        self.polls = {"in": 0, "out": 0, "calls": 0}

    def read(self) -> dict[str, Any]:
        info = self.connection.execute_command("INFO", "commandstats", "stats", "cpu", "clients")
        user = info.get("used_cpu_user_main_thread", info["used_cpu_user"])
        system = info.get("used_cpu_sys_main_thread", info["used_cpu_sys"])
        return {
            "time": time.monotonic(),
            "in": info["total_net_input_bytes"],
            "out": info["total_net_output_bytes"],
            "cpu": float(user) + float(system),
            "clients": info["connected_clients"],
            "calls": {
                key[len("cmdstat_"):]: value["calls"]
                for key, value in info.items()
                if key.startswith("cmdstat_")
            },
        }

    def calibrate(self) -> None:
        """What one reading adds to the next difference (its request and its answer)."""
        readings = [self.read() for _ in range(4)]
        self.reading_cost = {
            side: max(b[side] - a[side] for a, b in zip(readings[1:], readings[2:]))
            for side in ("in", "out")
        }

    def poll_count(self, key: str) -> int:
        """ZCOUNT key -inf +inf, counted so that it can be taken out of the difference."""
        found = int(self.connection.zcount(key, "-inf", "+inf"))
        self.polls["calls"] += 1
        self.polls["in"] += resp_length("ZCOUNT", key, "-inf", "+inf")
        self.polls["out"] += len(f":{found}\r\n")
        return found

    def start(self) -> dict[str, Any]:
        self.polls = {"in": 0, "out": 0, "calls": 0}
        return self.read()

    def since(self, before: dict[str, Any], idle_cpu: float = 0.0) -> dict[str, Any]:
        """Counters from `before` to now, less the readings and polls; `idle_cpu` (seconds of
        CPU per second that Redis spends alone) is taken out of the CPU."""
        after = self.read()
        calls = {
            name: after["calls"].get(name, 0) - before["calls"].get(name, 0)
            for name in after["calls"]
            if name not in OWN_COMMANDS
        }
        calls = {name: count for name, count in calls.items() if count}
        seconds = after["time"] - before["time"]
        zcounts = after["calls"].get("zcount", 0) - before["calls"].get("zcount", 0)
        if zcounts != self.polls["calls"]:
            raise RuntimeError(f"{zcounts} ZCOUNT calls, the script sent {self.polls['calls']}")
        return {
            "seconds": seconds,
            "commands": sum(calls.values()),
            "calls": dict(sorted(calls.items(), key=lambda item: -item[1])),
            "in": after["in"] - before["in"] - self.reading_cost["in"] - self.polls["in"],
            "out": after["out"] - before["out"] - self.reading_cost["out"] - self.polls["out"],
            "cpu": after["cpu"] - before["cpu"] - idle_cpu * seconds,
            "clients": after["clients"] - 1,  # this script's own connection left out
        }


def per(delta: dict[str, Any], count: float) -> dict[str, Any]:
    """A difference divided by `count` (jobs, or seconds times workers)."""
    return {
        "commands": delta["commands"] / count,
        "in": delta["in"] / count,
        "out": delta["out"] / count,
        "cpu": delta["cpu"] / count,
        "calls": {name: calls / count for name, calls in delta["calls"].items()},
    }


def wait_finished(meter: Meter, queue: str, expected: int, timeout: float, interval: float) -> None:
    """Poll the queue's finished registry until it holds `expected` jobs."""
    key = FinishedJobRegistry(queue, connection=meter.connection).key
    deadline = time.monotonic() + timeout
    while meter.poll_count(key) < expected:
        if time.monotonic() > deadline:
            failed = FailedJobRegistry(queue, connection=meter.connection).get_job_ids()
            raise RuntimeError(f"jobs not finished after {timeout} s (failed: {failed[:3]})")
        time.sleep(interval)


def check_completed(connection: redis.Redis, job_ids: list[str]) -> None:
    """Every job completed its analysis (outside any measurement)."""
    for job_id in job_ids:
        found = jobs.outcome(connection, job_id)
        if not found.ok:
            raise RuntimeError(f"job {job_id} ended {found.status}: {found.reason}")


def enqueue_phase(stack: Stack, meter: Meter, count: int, idle_cpu: float) -> dict[str, Any]:
    """One call per URL, then one batch, with no worker running; queues emptied after each."""
    connection = stack.connection
    urls = [stack.url(f"/chain/final?n={n:07d}") for n in range(count)]
    found = {}
    for kind in ("single", "batch"):
        disturbance = Disturbance()
        disturbance.start()
        before = meter.start()
        if kind == "single":
            for url in urls:
                submit.enqueue(connection, [url], [BUSY_QUEUE])
        else:
            submit.enqueue(connection, urls, [BUSY_QUEUE])
        delta = meter.since(before, idle_cpu)
        delta["other_cores"] = disturbance.cores()
        found[kind] = delta
        connection.flushdb()
        log(f"enqueue {kind}: {delta['commands'] / count:.2f} commands a job")
    return found


def idle_phase(stack: Stack, meter: Meter, window: float, idle_cpu: float) -> dict[str, Any]:
    """The workers, all idle, for `window` seconds."""
    disturbance = Disturbance()
    disturbance.start()
    before = meter.start()
    time.sleep(window)
    delta = meter.since(before, idle_cpu)
    delta["other_cores"] = disturbance.cores()
    delta["workers"] = len(stack.workers)
    dead = [name for name, process in stack.workers.items() if process.poll() is not None]
    if dead:
        raise RuntimeError(f"workers died while idle: {dead}")
    return delta


def busy_phase(
    stack: Stack, meter: Meter, path: str, count: int, idle_cpu: float, poll: float
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Enqueue `count` jobs of `path` in one batch, and wait until the worker finished them:
    (the enqueue, the processing, the job ids)."""
    connection = stack.connection
    key = FinishedJobRegistry(BUSY_QUEUE, connection=connection).key
    already = int(connection.zcard(key))
    urls = [stack.url(f"{path}{'&' if '?' in path else '?'}n={n:07d}") for n in range(count)]
    disturbance = Disturbance()
    disturbance.start()
    before = meter.start()
    submission = submit.enqueue(connection, urls, [BUSY_QUEUE])
    enqueued = meter.since(before, idle_cpu)
    before = meter.start()
    wait_finished(meter, BUSY_QUEUE, already + count, timeout=60 + count * 30, interval=poll)
    processed = meter.since(before, idle_cpu)
    processed["other_cores"] = disturbance.cores()
    return enqueued, processed, [job.id for job in submission.jobs]


def read_phase(stack: Stack, meter: Meter, job_ids: list[str], idle_cpu: float) -> dict[str, Any]:
    """Read every job's state and result document, as `thugrq result ID` does."""
    before = meter.start()
    for job_id in job_ids:
        state, document = jobs.result(stack.connection, job_id)
        if document is None or document.get("status") != "completed":
            raise RuntimeError(f"job {job_id}: {state.status}, no completed result")
    return meter.since(before, idle_cpu)


def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": vars(arguments),
        "load_average_start": os.getloadavg()[0],
    }
    started = time.monotonic()
    with Stack(bare=False) as stack:
        meter = Meter(stack.connection)
        meter.calibrate()
        raw["reading_cost"] = meter.reading_cost
        log(f"Redis alone for {arguments.alone} s")
        alone = idle_phase(stack, meter, arguments.alone, 0.0)
        idle_cpu = alone["cpu"] / alone["seconds"]
        raw["alone"] = alone

        raw["enqueue"] = enqueue_phase(stack, meter, arguments.jobs, idle_cpu)

        log("starting one worker")
        stack.launch_worker("sizing-0", QUEUES)
        stack.wait_idle(["sizing-0"])
        time.sleep(arguments.settle)
        log(f"one idle worker for {arguments.window} s")
        raw["idle_1"] = idle_phase(stack, meter, arguments.window, idle_cpu)

        log(f"one busy worker: {arguments.jobs} jobs of the plain page")
        enqueued, processed, ids = busy_phase(stack, meter, "/chain/final", arguments.jobs, idle_cpu, 0.5)
        raw["busy_enqueue"], raw["busy"] = enqueued, processed
        log(f"  {processed['seconds']:.1f} s, {processed['commands'] / arguments.jobs:.1f} commands a job")
        raw["read"] = read_phase(stack, meter, ids, idle_cpu)
        check_completed(stack.connection, ids)

        log(f"one busy worker: {arguments.slow_jobs} jobs of {arguments.slow_seconds} s each")
        path = f"/paced?seconds={arguments.slow_seconds}"
        _, slow, slow_ids = busy_phase(stack, meter, path, arguments.slow_jobs, idle_cpu, 0.5)
        raw["slow"] = slow
        check_completed(stack.connection, slow_ids)
        time.sleep(arguments.settle)

        names = [f"sizing-{n}" for n in range(1, arguments.workers)]
        log(f"starting {len(names)} more workers")
        for name in names:
            stack.launch_worker(name, QUEUES)
        stack.wait_idle(names, timeout=60 + 15 * len(names))
        wait_fleet(stack, ["sizing-0", *names])
        time.sleep(arguments.settle)
        log(f"{arguments.workers} idle workers for {arguments.window} s")
        raw["idle_k"] = idle_phase(stack, meter, arguments.window, idle_cpu)
    raw["load_average_end"] = os.getloadavg()[0]
    raw["revision"] = revision()
    raw["seconds"] = time.monotonic() - started
    return raw


def wait_fleet(stack: Stack, names: list[str], timeout: float = 30.0) -> None:
    """Every worker listed by `thugrq workers` (its fleet record), as well as idle in RQ."""
    deadline = time.monotonic() + timeout
    while True:
        listed = {record.name for record in fleet.workers(stack.connection)}
        if set(names) <= listed:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers missing from the fleet: {sorted(set(names) - listed)}")
        time.sleep(0.2)


def revision() -> str:
    """The checkout's commit, and whether thugrq/ differs from it (what the workers ran)."""
    root = BENCH.parent
    try:
        head = subprocess.check_output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], text=True)
        changed = subprocess.check_output(["git", "-C", str(root), "status", "--porcelain", "thugrq"], text=True)
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {head.strip()}" + (" + uncommitted changes in thugrq/" if changed.strip() else "")


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """The per-job, per-worker and on-paper figures from the raw differences."""
    jobs_n = raw["settings"]["jobs"]
    slow_n = raw["settings"]["slow_jobs"]
    single = per(raw["enqueue"]["single"], jobs_n)
    batch = per(raw["enqueue"]["batch"], jobs_n)
    busy = per(raw["busy"], jobs_n)
    read = per(raw["read"], jobs_n)
    slow = per(raw["slow"], slow_n)
    # A job runs for its phase's seconds divided by its count (one worker, jobs back to back).
    busy_seconds = raw["busy"]["seconds"] / jobs_n
    slow_seconds = raw["slow"]["seconds"] / slow_n
    sides = ("commands", "in", "out", "cpu")
    job = {side: batch[side] + busy[side] + read[side] for side in sides}

    one, many = raw["idle_1"], raw["idle_k"]
    k = many["workers"]
    rate = {side: {1: one[side] / one["seconds"], k: many[side] / many["seconds"]} for side in sides}
    marginal = {side: (rate[side][k] - rate[side][1]) / (k - 1) for side in rate}
    fixed = {side: rate[side][1] - marginal[side] for side in rate}
    # A running job's own traffic per second: what a slow job costs beyond a plain one, per
    # second it lasts longer, less the fixed part (the scheduler), which runs meanwhile anyway.
    longer = slow_seconds - busy_seconds
    running = {side: (slow[side] - busy[side]) / longer - fixed[side] for side in sides}
    fixed_calls = {
        name: calls / one["seconds"] - (many["calls"].get(name, 0) / many["seconds"] - calls / one["seconds"]) / (k - 1)
        for name, calls in one["calls"].items()
    }
    running_calls = {
        name: (slow["calls"].get(name, 0) - busy["calls"].get(name, 0)) / longer - fixed_calls.get(name, 0)
        for name in set(slow["calls"]) | set(busy["calls"])
    }
    clients = (many["clients"] - one["clients"]) / (k - 1)

    jobs_per_s = URLS_PER_DAY / 86400
    fleet_idle = {side: fixed[side] + FLEET * marginal[side] for side in rate}
    traffic = {side: jobs_per_s * job[side] for side in job}
    core_jobs = (1 - fleet_idle["cpu"]) / job["cpu"] if job["cpu"] > 0 else float("inf")
    return {
        "per_job": {"enqueue_single": single, "enqueue_batch": batch, "processing": busy,
                    "read": read, "all": job},
        "job_seconds": busy_seconds,
        "slow_job_seconds": slow_seconds,
        "running_per_second": running,
        "running_calls": dict(sorted(running_calls.items(), key=lambda item: -item[1])),
        "idle_rate": rate,
        "idle_per_worker": marginal,
        "idle_fixed": fixed,
        "clients_per_worker": clients,
        "idle_workers": k,
        "fleet_idle": fleet_idle,
        "jobs_per_second": jobs_per_s,
        "traffic": traffic,
        "redis_alone_cpu": raw["alone"]["cpu"] / raw["alone"]["seconds"],
        "jobs_per_second_at_one_core": core_jobs,
        "idle_workers_at_one_core": (1 - fixed["cpu"]) / marginal["cpu"] if marginal["cpu"] > 0 else float("inf"),
    }


def table(raw: dict[str, Any], fig: dict[str, Any]) -> str:
    m = raw["machine"]
    s = raw["settings"]
    jobs_n = s["jobs"]
    lines = [
        f"thugrq sizing, {raw['when']}",
        f"machine: {m['nproc']} cores (nproc), {m['cpu_model']}, {m['memory_gib']} GiB, Linux {m['kernel']}",
        f"software: Python {m['python']}, Thug {m['thug']}, RQ {m['rq']}, redis-py {m['redis_py']}, "
        f"redis-server {m['redis_server']}",
        f"thugrq measured: {raw['revision']}",
        f"load average (1 min) at start {raw['load_average_start']:.2f}, at end "
        f"{raw['load_average_end']:.2f}; ran in {raw['seconds']:.0f} s",
        "counters: INFO commandstats (calls), total_net_input/output_bytes (in = to Redis, out = "
        "from Redis), main-thread CPU less Redis's own "
        f"{fig['redis_alone_cpu'] * 1e3:.2f} ms/s when alone",
        "",
        f"Per job ({jobs_n} jobs of the plain page, one worker, back to back: "
        f"{fig['job_seconds']:.2f} s a job)",
        "  phase                                 commands    in B/job   out B/job  CPU us/job  other cores",
    ]

    def row(label: str, f: dict[str, Any], other: float | None = None) -> str:
        extra = f"  {other:11.2f}" if other is not None else ""
        return (f"  {label:<36} {f['commands']:9.1f} {f['in']:11.0f} {f['out']:11.0f} "
                f"{f['cpu'] * 1e6:11.1f}{extra}")

    pj = fig["per_job"]
    lines += [
        row("enqueue, one call per URL", pj["enqueue_single"], raw["enqueue"]["single"]["other_cores"]),
        row("enqueue, one batch", pj["enqueue_batch"], raw["enqueue"]["batch"]["other_cores"]),
        row("worker: dequeue .. result (all)", pj["processing"], raw["busy"]["other_cores"]),
        row("client: read the result", pj["read"]),
        row("a job, all told (batch+worker+read)", pj["all"]),
        "  worker's commands a job, by name: " + ", ".join(
            f"{name} {calls:.2f}" for name, calls in list(pj["processing"]["calls"].items())[:14]
        ),
        f"  Redis CPU per 1,000 jobs: {pj['all']['cpu'] * 1e3 * 1e3:.0f} ms "
        f"(worker side {pj['processing']['cpu'] * 1e6:.0f} ms, batch enqueue "
        f"{pj['enqueue_batch']['cpu'] * 1e6:.0f} ms, result read {pj['read']['cpu'] * 1e6:.0f} ms)",
    ]
    run = fig["running_per_second"]
    lines += [
        "",
        f"While a job runs ({s['slow_jobs']} jobs of {fig['slow_job_seconds']:.1f} s against the plain "
        f"page's {fig['job_seconds']:.2f} s)",
        f"  a busy worker, per second of analysis: {run['commands']:.2f} commands, {run['in']:.0f} B in, "
        f"{run['out']:.0f} B out, {run['cpu'] * 1e6:.1f} us CPU (the fixed part below taken out)",
        "  by name, per second: " + ", ".join(
            f"{name} {calls:.2f}" for name, calls in list(fig["running_calls"].items())[:10]
        ),
    ]
    k = fig["idle_workers"]
    rate = fig["idle_rate"]
    lines += [
        "",
        f"Idle workers ({s['window']:.0f} s windows; fleet = fixed + per worker x workers)",
        "                                     commands/s     in B/s    out B/s  CPU us/s  clients  other cores",
        f"  1 idle worker                      {rate['commands'][1]:10.2f} {rate['in'][1]:10.0f} "
        f"{rate['out'][1]:10.0f} {rate['cpu'][1] * 1e6:9.1f} {raw['idle_1']['clients']:8d}  "
        f"{raw['idle_1']['other_cores']:11.2f}",
        f"  {k} idle workers                    {rate['commands'][k]:10.2f} {rate['in'][k]:10.0f} "
        f"{rate['out'][k]:10.0f} {rate['cpu'][k] * 1e6:9.1f} {raw['idle_k']['clients']:8d}  "
        f"{raw['idle_k']['other_cores']:11.2f}",
        f"  per further worker                 {fig['idle_per_worker']['commands']:10.2f} "
        f"{fig['idle_per_worker']['in']:10.0f} {fig['idle_per_worker']['out']:10.0f} "
        f"{fig['idle_per_worker']['cpu'] * 1e6:9.1f} {fig['clients_per_worker']:8.1f}",
        f"  fixed (the one scheduler)          {fig['idle_fixed']['commands']:10.2f} "
        f"{fig['idle_fixed']['in']:10.0f} {fig['idle_fixed']['out']:10.0f} "
        f"{fig['idle_fixed']['cpu'] * 1e6:9.1f}",
        f"  idle commands per worker per second, by name ({k} workers, the scheduler shared): " + ", ".join(
            f"{name} {calls / raw['idle_k']['seconds'] / k:.3f}"
            for name, calls in list(raw["idle_k"]["calls"].items())[:10]
        ),
    ]
    fi, tr = fig["fleet_idle"], fig["traffic"]
    total_cpu = fi["cpu"] + tr["cpu"]
    busy_at_30 = fig["jobs_per_second"] * 30  # workers busy at once if each analysis took 30 s
    extra = {side: busy_at_30 * (run[side] - fig["idle_per_worker"][side]) for side in run}
    lines += [
        "",
        f"On paper: {FLEET:,} workers and {URLS_PER_DAY:,} URLs a day ({fig['jobs_per_second']:.1f} jobs/s) on one Redis",
        "                                     commands/s     in KB/s   out KB/s  Redis cores",
        f"  {FLEET:,} idle workers                {fi['commands']:10.0f} {fi['in'] / 1e3:11.1f} "
        f"{fi['out'] / 1e3:10.1f} {fi['cpu']:12.3f}",
        f"  {URLS_PER_DAY:,} URLs a day (plain page)  {tr['commands']:10.0f} {tr['in'] / 1e3:11.1f} "
        f"{tr['out'] / 1e3:10.1f} {tr['cpu']:12.3f}",
        f"  both                               {fi['commands'] + tr['commands']:10.0f} "
        f"{(fi['in'] + tr['in']) / 1e3:11.1f} {(fi['out'] + tr['out']) / 1e3:10.1f} {total_cpu:12.3f}",
        f"  if every analysis lasted 30 s, {busy_at_30:.0f} workers busy at once instead of idle: "
        f"{extra['commands']:+.0f} commands/s, {extra['cpu']:+.3f} cores",
        f"  connections: {fig['clients_per_worker'] * FLEET:.0f} for {FLEET:,} workers "
        f"({fig['clients_per_worker']:.1f} a worker; redis-server's default maxclients is 10,000)",
        f"  one Redis core (Redis runs commands on one thread) is reached at "
        f"{fig['jobs_per_second_at_one_core']:.0f} jobs/s "
        f"({fig['jobs_per_second_at_one_core'] * 86400 / 1e6:.1f} million URLs a day) beside {FLEET:,} idle workers, "
        f"or by {fig['idle_workers_at_one_core']:,.0f} idle workers alone",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts, 4 workers")
    parser.add_argument("--jobs", type=int, help="jobs enqueued and processed (default 300; quick 40)")
    parser.add_argument("--workers", type=int, help="idle workers at the end (default 20; quick 4)")
    parser.add_argument("--window", type=float, help="seconds of each idle window (default 90, a multiple of the 15 s dequeue wait and the 10 s maintenance; quick 30)")
    parser.add_argument("--slow-jobs", type=int, help="slow jobs (default 3; quick 1)")
    parser.add_argument("--slow-seconds", type=float, help="each slow job's length (default 20; quick 8)")
    parser.add_argument("--json", metavar="FILE", help="write every raw difference and figure here")
    parser.add_argument("--table-from", metavar="FILE", help="print the table of an earlier --json FILE, measure nothing")
    arguments = parser.parse_args()
    quick = arguments.quick
    for name, full, small in (("jobs", 300, 40), ("workers", 20, 4), ("window", 90.0, 30.0),
                              ("slow_jobs", 3, 1), ("slow_seconds", 20.0, 8.0)):
        if getattr(arguments, name) is None:
            setattr(arguments, name, small if quick else full)
    arguments.alone = 10.0 if quick else 20.0
    arguments.settle = 3.0 if quick else 5.0
    if arguments.workers < 2:
        parser.error("--workers must be at least 2 (one worker, then more)")
    if arguments.table_from:
        raw = json.loads(Path(arguments.table_from).read_text())["raw"]
        for phase in ("idle_1", "idle_k"):  # JSON made the idle rates' keys strings
            raw[phase]["workers"] = int(raw[phase]["workers"])
    else:
        raw = measure(arguments)
        if arguments.json:  # kept before anything else can fail
            Path(arguments.json).write_text(json.dumps({"raw": raw}, indent=2, default=str))
    fig = figures(raw)
    print(table(raw, fig))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps({"raw": raw, "figures": fig}, indent=2, default=str))
        log(f"raw figures in {arguments.json}")


if __name__ == "__main__":
    main()
