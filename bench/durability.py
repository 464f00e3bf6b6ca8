"""What the embedded Redis's append-only file costs the submitter: enqueue rates with
`appendfsync always` and `everysec` against `appendonly no`, measured in the same run.

    .venv/bin/python bench/durability.py                 # 500 single enqueues, 5,000 in a batch
    .venv/bin/python bench/durability.py --reps 3 --single 200 --batch 2000

Three private redis-servers (thugrq.redis_server.start_redis, never the machine's Redis), with
their files in one temporary directory on the disk of the user's data directory (where the
embedded Redis keeps its own): no RDB snapshots on any, the append-only file off, on and
fsync'd once a second, on and fsync'd before each answer. Each round enqueues into each in
turn (the order rotating), emptied before each run:

- single: `submit.enqueue(connection, [url])` once per URL, as `thugrq enqueue URL` or
  `./bin/run URL` enqueues (each call waits for Redis's answer: one fsync each with `always`);
- batch: all the URLs in one `submit.enqueue` call, thugrq's pipelined path (`thugrq enqueue -f`).

Prints jobs per second (median of the rounds) and each one's ratio to `appendonly no`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV_PYTHON = BENCH.parent / ".venv" / "bin" / "python"
if sys.prefix == sys.base_prefix and VENV_PYTHON.exists():  # not in a venv: use the project's
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])

import redis  # noqa: E402

from thugrq import config, stack, submit  # noqa: E402
from thugrq.process import free_port  # noqa: E402
from thugrq.redis_server import start_redis  # noqa: E402

#: Each setting: whether the append-only file is on, and its fsync policy.
SETTINGS = {
    "appendonly no": (False, "no"),
    "everysec": (True, "everysec"),
    "always": (True, "always"),
}


def rate(connection: redis.Redis, urls: list[str], single: bool) -> float:
    """Jobs per second enqueueing `urls`, one call each or in one batch, into an empty Redis."""
    connection.flushall()
    started = time.perf_counter()
    if single:
        for url in urls:
            submit.enqueue(connection, [url])
    else:
        submit.enqueue(connection, urls)
    seconds = time.perf_counter() - started
    queued = connection.llen(f"rq:queue:{config.GENERIC_QUEUE}")
    if queued != len(urls):
        raise SystemExit(f"{queued} jobs queued, expected {len(urls)}")
    return len(urls) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--single", type=int, default=500, help="single enqueues a run (500)")
    parser.add_argument("--batch", type=int, default=5000, help="URLs in a batch run (5000)")
    arguments = parser.parse_args()
    stack.state_dir().mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="durability-", dir=stack.state_dir()))
    servers, connections = [], {}
    try:
        for name, (persist, fsync) in SETTINGS.items():
            port = free_port()
            servers.append(start_redis(port, directory / fsync, persist, appendfsync=fsync))
            connections[name] = redis.Redis(port=port)
        kinds = {"single": arguments.single, "batch": arguments.batch}
        rates: dict[tuple[str, str], list[float]] = {}
        for rep in range(arguments.reps):
            names = list(SETTINGS)[rep % 3:] + list(SETTINGS)[: rep % 3]
            for kind, count in kinds.items():
                urls = [f"http://127.0.0.1/{kind}/{n}" for n in range(count)]
                for name in names:
                    found = rate(connections[name], urls, kind == "single")
                    rates.setdefault((kind, name), []).append(found)
            print(f"round {rep + 1}/{arguments.reps}", file=sys.stderr)
        print(f"enqueue rate by append-only setting, median of {arguments.reps} (in {directory})")
        for kind, count in kinds.items():
            baseline = statistics.median(rates[(kind, "appendonly no")])
            for name in SETTINGS:
                median = statistics.median(rates[(kind, name)])
                print(
                    f"  {kind:<6} x{count:<5} {name:<14} {median:9.0f} jobs/s"
                    f"  {median / baseline:5.2f}x of appendonly no"
                )
    finally:
        for server in servers:
            server.kill()
            server.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
