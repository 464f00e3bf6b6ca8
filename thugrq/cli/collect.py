"""`thugrq collect`: finished jobs drained from Redis into a collected store on disk."""

from __future__ import annotations

import signal
from types import FrameType

import click

from thugrq import collector
from thugrq.cli.helpers import RedisTarget, failures, pass_redis
from thugrq.store import Store, StoreError


@click.command()
@click.option(
    "--to", "directory", required=True, metavar="DIR", type=click.Path(file_okay=False),
    help="The store (created): results/DAY.jsonl, samples/ab/cd/SHA256, index.sqlite.",
)
@click.option("--once", is_flag=True, help="One pass over everything finished by now, then exit.")
@click.option(
    "--keep", type=click.IntRange(0), default=collector.KEEP, show_default=True, metavar="SECONDS",
    help="How long a collected job stays in Redis (the dashboard shows recent work).",
)
@click.option(
    "--interval", type=click.FloatRange(0.1), default=collector.INTERVAL, show_default=True,
    metavar="SECONDS", help="Pause between passes.",
)
@click.option(
    "--batch", type=click.IntRange(1, 10_000), default=collector.BATCH, show_default=True,
    help="Jobs read and written per transaction.",
)
@pass_redis
def collect(target: RedisTarget, directory: str, once: bool, keep: int, interval: float, batch: int) -> None:
    """Move finished jobs out of Redis into DIR, for good: every finished analysis (completed,
    timeout, error, refused) with its result document, and every failed job with its reason,
    one JSON line each in DIR/results/DAY.jsonl (the UTC day it ended); the files they
    downloaded once each in DIR/samples/ (mode 0600, never executed); an SQLite index to find
    them by job id, URL, group or sample hash.

    Once a job is on disk (fsync'd and indexed), its keys in Redis expire --keep seconds later.
    No outcome is lost or written twice, even when the collector is killed; several collectors
    may share DIR. `thugrq result` and `thugrq sample` read DIR (--store, $THUGRQ_STORE) when
    Redis no longer holds a job or sample. Runs until SIGTERM or Ctrl-C unless --once.
    """
    connection = target.connect()
    with failures(StoreError, OSError):
        store = Store(directory, create=True)
    collecting = collector.Collector(connection, store, keep=keep, batch=batch)

    def report(counts: collector.Counts) -> None:
        if counts.collected or once:
            click.echo(
                f"collected {counts.collected} job(s) and {counts.samples} sample(s) into "
                f"{directory}; {counts.shortened} job(s) now expire from Redis in {keep} s",
                err=True,
            )

    def stop(signum: int, frame: FrameType | None) -> None:
        collecting.stopping.set()  # the batch under way is finished first

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    with failures(StoreError):
        if once:
            report(collecting.run_once())
        else:
            collecting.run(interval, report)


COMMANDS = (collect,)
