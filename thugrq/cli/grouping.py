"""How `thugrq wait --group` and `thugrq group` present a group: its counts, a summary, and
which page of its jobs was listed (thugrq.cli.jobs holds the commands)."""

from __future__ import annotations

from collections.abc import Callable

import click

from thugrq import groups, tally


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


def print_summary(shown: groups.Report) -> None:
    """The counts per status and queue, the comparison, the misplaced jobs: all but the jobs."""
    counts, compared = shown.counts, shown.compared
    finished = sum(counts.statuses.get(status, 0) for status in tally.ANALYSIS_STATUSES)
    click.echo(f"group {shown.group}: {status_line(counts)}")
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
