"""How `thugrq wait`, `thugrq enqueue --wait` and `thugrq group` present jobs and a group:
the outcomes, the group's counts, a summary, and which page of its jobs was listed
(thugrq.cli.jobs and thugrq.cli.submission hold the commands)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import redis

from thugrq import groups, job, submit, tally
from thugrq.cli.helpers import Output, failures, progress
from thugrq.exceptions import UnknownJob


def page_options(command: Callable) -> Callable:
    """--limit and --offset: which jobs of a group are listed."""
    command = click.option(
        "--offset", type=click.IntRange(0), default=0, show_default=True,
        help="Skip this many jobs (sorted by id) before listing.",
    )(command)
    return click.option(
        "--limit", type=click.IntRange(0), default=groups.DEFAULT_LIMIT, show_default=True,
        help="List at most this many jobs of a group.",
    )(command)


def status_line(counts: tally.Counts) -> str:
    """How many jobs the group has, how many ended and how, how many have not."""
    shown = ", ".join(f"{n} {status}" for status, n in counts.statuses.items())
    return (
        f"{counts.total} job(s), {counts.ended} ended ({shown or 'none yet'}), "
        f"{counts.remaining} not ended"
    )


def tell_more(group: str, total: int, offset: int, limit: int, err: bool = False) -> None:
    """Which jobs of the group a page listed, and how to see the next ones."""
    listed = max(min(total - offset, limit), 0)
    if listed == total:
        return
    more = max(total - offset - listed, 0)
    shown = f"listed jobs {offset + 1}-{offset + listed}" if listed else "listed none"
    hint = f": thugrq group {group} --offset {offset + listed}" if more and limit else ""
    click.echo(f"{shown} of {total}; {more} more{hint}", err=err)


def print_summary(shown: groups.Report, page: str | None = None) -> None:
    """The counts per status and queue, the comparison, the misplaced jobs: all but the jobs;
    `page`: the group's page on the dashboard, if one is known."""
    counts, compared = shown.counts, shown.compared
    finished = sum(counts.statuses.get(status, 0) for status in tally.ANALYSIS_STATUSES)
    click.echo(f"group {shown.group}: {status_line(counts)}")
    if page:
        click.echo(f"Page: {page}")
    if shown.read_from:
        click.echo(f"Redis no longer holds this group: read from the store at {shown.read_from} "
                   "(its collected jobs only).")
    click.echo(f"{finished} of {counts.total} analyses finished.")
    statuses = [s for s in tally.STATUSES if counts.statuses.get(s)]
    columns = " ".join(f"{s.upper():>9}" for s in statuses)
    click.echo(f"\n{'QUEUE':<10} {'JOBS':>7} {columns} {'NOT ENDED':>9}")
    for name, row in sorted(counts.queues.items()):
        ended = sum(row.get(s, 0) for s in tally.STATUSES)
        jobs_in = row.get("total", ended)
        click.echo(f"{name:<10} {jobs_in:>7} " + " ".join(f"{row.get(s, 0):>9}" for s in statuses)
                   + f" {max(jobs_in - ended, 0):>9}")
    click.echo("")
    if compared.limited:
        click.echo(f"Compared {len(compared.outcomes)} of {compared.completed} completed analyses "
                   f"(--compare {compared.limit}): differences involving the others are not shown.")
    for row in shown.misplaced:
        click.echo(
            f"MISPLACED {row.id}: queue {row.queue}, analysed from "
            f"{row.analysed_from or 'no verified country'}"
        )
    if not compared.differences:
        click.echo("No differences between the finished analyses of each URL.")
    for difference in compared.differences:
        click.echo(f"\nDIFFERENT {difference.title} for {difference.url}:")
        for value, who in difference.seen.items():
            click.echo(f"  {', '.join(who)}:\n    {value}")
    click.echo("")


def wait_and_report(
    connection: redis.Redis, job_ids: list[str], output: Output, timeout: float | None,
    group: str | None = None, limit: int = groups.DEFAULT_LIMIT, offset: int = 0,
) -> None:
    """Wait for the jobs, print their outcomes, and exit non-zero unless all completed.

    With a group, the wait reads the group's tally (a few commands a poll whatever its size),
    and a page of its outcomes is printed (sorted by id, as `thugrq group` pages them; with
    --json each carries the group's id), with the counts of the whole group on stderr."""
    if group is None:
        with progress(len(job_ids), "analysing") as bar:
            submit.wait(connection, job_ids, timeout=timeout, on_progress=bar.update)
        outcomes = [job.outcome(connection, job_id) for job_id in job_ids]
        output.rows(outcomes, print_outcomes)
        if not all(o.ok for o in outcomes):
            sys.exit(1)
        return
    with failures(UnknownJob):
        with progress(tally.read(connection, group).total, "analysing") as bar:
            waited = groups.wait(connection, group, timeout=timeout, on_progress=bar.update)
        ids = groups.members(connection, group)
    listed: list[Any] = groups.page(connection, ids, offset, limit)
    if output.as_json:
        listed = [{**outcome.to_dict(), "group": group} for outcome in listed]
    output.rows(listed, print_outcomes)
    counts = waited.counts
    ended = "every job ended" if waited.done else f"timed out after {timeout:g} s"
    click.echo(f"group {group}: {ended}; {status_line(counts)}", err=True)
    tell_more(group, len(ids), offset, limit, err=True)
    if not (waited.done and counts.all_completed):
        sys.exit(1)


def print_outcomes(outcomes: list[job.Outcome]) -> None:
    """One line a job: id, status, queue, personality, counts, URL and final URL, reason."""
    if not outcomes:
        return
    click.echo(
        f"{'ID':<36}  {'STATUS':<9}  {'QUEUE':<7}  {'USERAGENT':<15}  EXPLOITS  SAMPLES  "
        "URL -> FINAL URL"
    )
    for row in outcomes:
        final = f" -> {row.final_url}" if row.final_url not in (None, row.url) else ""
        reason = f"  ({row.reason})" if row.reason else ""
        click.echo(
            f"{row.id:<36}  {row.status:<9}  {row.queue or '-':<7}  {row.useragent or '-':<15}  "
            f"{row.exploits:>8}  {row.samples:>7}  {row.url}{final}{reason}"
        )
