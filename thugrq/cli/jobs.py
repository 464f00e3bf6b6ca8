"""Reading jobs back: `wait`, `status`, `result`, `group`, `export`, `queues`, `quarantine`.

Results go to stdout, messages to stderr; a command exits non-zero when a job it was asked
about is unknown or did not complete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import redis
from rq.job import JobStatus

from thugrq import fencing, groups, job, links, quarantine, submit
from thugrq.cli.grouping import (
    page_options,
    print_outcomes,
    print_summary,
    tell_more,
    wait_and_report,
)
from thugrq.cli.helpers import (
    Failure,
    Output,
    RedisTarget,
    dashboard_base,
    failures,
    json_option,
    open_store,
    pass_redis,
    store_option,
)
from thugrq.exceptions import UnknownJob
from thugrq.queue import ThugrqQueue
from thugrq.results import format_summary
from thugrq.store import Store, nor_in


def _job_ids(
    connection: redis.Redis, job_ids: tuple[str, ...], group: str | None, store: Store | None = None
) -> list[str]:
    """The ids given, or the group's (from the collected store's index once Redis lost it)."""
    if bool(job_ids) == bool(group):
        raise click.UsageError("give job ids or --group ID (one of the two)")
    if job_ids:
        return list(job_ids)
    with failures(UnknownJob):
        try:
            return submit.group_jobs(connection, group)
        except UnknownJob as error:
            collected = sorted({row.id for row in store.find(group=group)}) if store else []
            if not collected:
                raise UnknownJob(f"{error}{nor_in(store)}") from error
            return collected


@click.command(name="wait")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--group", "-g", metavar="ID", help="Wait for every job of this group.")
@click.option("--timeout", type=float, metavar="SECONDS", help="Stop waiting after SECONDS.")
@page_options
@json_option("One JSON object per line.")
@pass_redis
def wait_command(
    target: RedisTarget, job_ids: tuple[str, ...], group: str | None, timeout: float | None,
    limit: int, offset: int, output: Output,
) -> None:
    """Wait for jobs to end, then print each outcome (status, final URL, exploits, samples).

    With --group, progress is read from the group's counts (a few Redis commands a poll, however
    big the group), a progress bar is shown on a terminal, the group's counts per status are
    written to stderr and one page of outcomes (--limit, --offset) to stdout.

    Exits non-zero when any job failed, timed out, or is still unfinished.
    """
    base = dashboard_base(target.url) if group and not job_ids else None
    connection = target.connect()
    if group and not job_ids:
        if base:
            click.echo(f"group page: {links.group_page(base, group)}", err=True)
        wait_and_report(connection, [], output, timeout, group=group, limit=limit, offset=offset)
        return
    wait_and_report(connection, _job_ids(connection, job_ids, group), output, timeout)


@click.command(name="group")
@click.argument("group_id", metavar="ID")
@page_options
@click.option(
    "--compare", "compare_limit", type=click.IntRange(0), default=groups.COMPARE_LIMIT,
    show_default=True, help="Compare at most this many completed analyses (by job id).",
)
@json_option("One JSON document.")
@store_option
@pass_redis
def group_command(
    target: RedisTarget, group_id: str, limit: int, offset: int, compare_limit: int, output: Output,
    store: str | None,
) -> None:
    """Summarise a group, compare its finished analyses of each URL, and list its jobs.

    The summary counts the jobs per status and per queue (country). The comparison names each
    URL whose final URL, redirect chain, exploits or samples differ between countries or
    personalities, and each host name whose DNS answers differ, and who saw what: the mark of
    cloaking. It reads at most --compare completed analyses, and says so when there were more.
    A country job analysed from another country (or from no verified one) is flagged
    MISPLACED. Jobs are listed a page at a time (--limit, --offset), sorted by id.

    Jobs Redis no longer holds, or the whole group, are read from the collected store (--store,
    `thugrq collect`): a group gone from Redis is reported from its collected jobs.

    When a dashboard is known (the local stack's serving this Redis, or THUGRQ_DASHBOARD_URL),
    the group's page there is named after the first line (`page_url` with --json).
    """
    base = dashboard_base(target.url)
    connection = target.connect()
    with failures(UnknownJob):
        shown = groups.report(
            connection, group_id, offset, limit, compare_limit, open_store(store) if store else None
        )
    # The dashboard reads Redis: a group read from the store has no page there.
    page = links.group_page(base, shown.group) if base and not shown.read_from else None

    def text(_: Any) -> None:
        print_summary(shown, page)
        print_outcomes(shown.listed)
        tell_more(shown.group, shown.total, shown.offset, shown.limit)

    output.document({**shown.to_dict(), **({"page_url": page} if page else {})}, text)


@click.command()
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--group", "-g", metavar="ID", help="Export every finished job of this group.")
@click.option(
    "--output", "-o", "directory", required=True, metavar="DIR",
    type=click.Path(file_okay=False, writable=True), help="Directory to write into (created).",
)
@click.option(
    "--zip", "as_zip", is_flag=True,
    help="Write the samples into DIR/samples.zip, AES-256 encrypted with the password "
    "`infected` (the malware-sharing convention), instead of DIR/samples/.",
)
@store_option
@pass_redis
def export(
    target: RedisTarget, job_ids: tuple[str, ...], group: str | None, directory: str, as_zip: bool,
    store: str | None,
) -> None:
    """Write each finished job's result document to DIR/ID.json, for other tools, and the
    files it downloaded that Redis keeps (its result's samples marked kept) to
    DIR/samples/SHA256, mode 0600, never executed: each sample once, however many jobs had it.

    Jobs and samples Redis no longer holds are read from the collected store (--store,
    `thugrq collect`). Jobs without a result, and samples neither holds, are named on stderr,
    and the exit status is then non-zero.
    """
    from thugrq.cli.samples import SampleExport  # the samples' side of export lives there

    connection = target.connect()
    collected = open_store(store) if store else None
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    missing = 0
    with SampleExport(connection, folder, as_zip, collected) as kept:
        for job_id in _job_ids(connection, job_ids, group, collected):
            document, why_not = _document(connection, job_id, collected)
            if document is None:
                click.echo(f"{job_id}: {why_not}", err=True)
                missing += 1
                continue
            path = folder / f"{job_id}.json"
            path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            click.echo(str(path))
            kept.add(job_id, document)
    if missing or kept.missing:
        sys.exit(1)


def _document(
    connection: redis.Redis, job_id: str, store: Store | None
) -> tuple[dict[str, Any] | None, str]:
    """A job's result document from Redis, else from the collected store; or None and why."""
    try:
        current, document = job.result(connection, job_id)
    except UnknownJob as error:
        line = store.job(job_id) if store else None
        if line is None:
            return None, f"{error}{nor_in(store)}"
        return line["result"], f"not exported, the job is {line['status']} (collected)"
    return document, f"not exported, the job is {current.status}"


@click.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@json_option("One JSON object per line.")
@pass_redis
def status(target: RedisTarget, job_ids: tuple[str, ...], output: Output) -> None:
    """Show where each job stands: queued, started, finished, failed (with the reason).

    Exits non-zero if any id is unknown.
    """
    connection = target.connect()
    states = []
    for job_id in job_ids:
        try:
            states.append(job.state(connection, job_id))
        except UnknownJob as error:
            click.echo(f"{job_id}: {error}", err=True)
    output.rows([current.__dict__ for current in states], _print_states)
    if len(states) < len(job_ids):
        sys.exit(1)


def _print_states(states: list[dict[str, Any]]) -> None:
    for current in states:
        reason = f"  ({current['reason']})" if current["reason"] else ""
        click.echo(f"{current['id']}  {current['status']:<9}  {current['queue']}  {current['url']}{reason}")


@click.command()
@click.argument("job_id", metavar="ID")
@json_option("Print the whole result document as JSON.")
@store_option
@pass_redis
def result(target: RedisTarget, job_id: str, output: Output, store: str | None) -> None:
    """Print the analysis of a finished job: a summary, or with --json the whole document
    (schema thugrq.result/1, including Thug's JSON log).

    The summary also lists attempts that were replaced (a worker frozen or cut off long enough
    for another to run the job again) and whose late outcome was refused. A job Redis no
    longer holds is read from the collected store (--store, `thugrq collect`).

    When a dashboard is known (the local stack's serving this Redis, or THUGRQ_DASHBOARD_URL),
    a last line gives the job's analysis page there (`page_url` with --json).

    Exits 0 only for a finished job; a queued, running, failed or unknown job is reported on
    stderr with a non-zero exit.
    """
    base = dashboard_base(target.url)
    connection = target.connect()
    try:
        current, document = job.result(connection, job_id)
    except UnknownJob as error:
        line = open_store(store).job(job_id) if store else None
        if line is None:
            raise Failure(f"{error}{f'; nor in the store at {store}' if store else ''}") from error
        if line["result"] is None:
            raise Failure(f"job {job_id} {line['status']}: {line['reason']} (collected)") from error
        replaced = line["superseded"] or []
        output.document(line["result"], lambda shown: click.echo(format_summary(shown, replaced)))
        return
    if current.status == JobStatus.FAILED:
        raise Failure(f"job {job_id} failed: {current.reason}")
    if document is None:
        message = {
            JobStatus.QUEUED: "is still queued: no worker has taken it yet",
            JobStatus.STARTED: "is being analysed: try again shortly",
        }.get(current.status, f"has no result (status {current.status})")
        raise Failure(f"job {job_id} {message}")
    replaced = fencing.superseded(connection, job_id)
    # The dashboard reads Redis: only a job it holds has a page there.
    page = links.job_page(base, job_id) if base else None

    def text(_: Any) -> None:
        click.echo(format_summary(document, replaced))
        if page:
            click.echo(f"Page         {page}")

    output.document({**document, "page_url": page} if page else document, text)


@click.command()
@pass_redis
def queues(target: RedisTarget) -> None:
    """List thugrq's queues with their waiting, running, finished and failed jobs."""
    connection = target.connect()
    click.echo(f"{'QUEUE':<10} {'QUEUED':>7} {'STARTED':>8} {'FINISHED':>9} {'FAILED':>7}")
    for queue in sorted(ThugrqQueue.all(connection=connection), key=lambda q: q.name):
        click.echo(
            f"{queue.name:<10} {queue.count:>7} {queue.started_job_registry.count:>8} "
            f"{queue.finished_job_registry.count:>9} {queue.failed_job_registry.count:>7}"
        )


@click.command(name="quarantine")
@click.option("--purge", is_flag=True, help="Delete the records, and the keys moved aside with them.")
@json_option("One JSON object per line.")
@pass_redis
def quarantine_command(target: RedisTarget, purge: bool, output: Output) -> None:
    """List the queue entries workers moved aside because nobody could read them.

    Anyone who may push to a queue can write an id of any bytes, or make a job key a string;
    workers move such entries aside instead of stopping on them. Each record says where the
    entry was, why it was moved, and where a key of the wrong type went. Newest first.
    """
    connection = target.connect()
    if purge:
        click.echo(f"purged {quarantine.purge(connection)} record(s)", err=True)
        return
    output.rows(quarantine.records(connection), _print_records)


def _print_records(records: list[dict[str, Any]]) -> None:
    if not records:
        click.echo("nothing in quarantine", err=True)
        return
    click.echo(f"{'WHEN':<25} {'KEY':<24} {'ENTRY':<24} REASON")
    for record in records:
        moved = f" (moved to {record['moved_to']})" if record["moved_to"] else ""
        click.echo(
            f"{record['at']:<25} {record['key']:<24} {record['entry'] or '-':<24} "
            f"{record['reason']}{moved}"
        )


COMMANDS = (wait_command, group_command, export, status, result, queues, quarantine_command)
