"""`thugrq enqueue`, and what a submitter may choose from: `options`, `useragents`.

Each command is a thin layer over `thugrq.submit`. Job ids go to stdout, messages to stderr,
so the output can be piped into other tools.
"""

from __future__ import annotations

import dataclasses
import sys
from functools import partial
from typing import Any

import click

from thugrq import config, defaults, links, redis_check, submit
from thugrq.cli.helpers import (
    Failure,
    Output,
    RedisTarget,
    dashboard_base,
    failures,
    json_option,
    options_from,
    pass_redis,
    progress,
    thug_options,
)
from thugrq.cli.grouping import wait_and_report
from thugrq.countries import country_code
from thugrq.exceptions import InvalidInput
from thugrq.options import describe
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES


def _lines(path: str) -> list[str]:
    """The lines of a file, or of stdin for `-`."""
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise Failure(f"cannot read {path}: {error}") from error


@click.command()
@click.argument("urls", nargs=-1, metavar="[URL]...")
@click.option(
    "--url-file", "-f", metavar="FILE",
    help="Read URLs from FILE, one a line (- for stdin); blank lines and # comments are skipped.",
)
@click.option(
    "--country", "-c", "countries", multiple=True, metavar="COUNTRY",
    help="Country queue, by ISO code or name in any case (it, IT, Italy). Repeatable.",
)
@click.option("--country-file", metavar="FILE", help="Read countries from FILE, one a line.")
@click.option("--generic", is_flag=True, help="Add the generic queue next to the countries.")
@click.option(
    "--queue", "-q", "queues", multiple=True, metavar="QUEUE",
    help="Queue by name: generic or a country. Repeatable.",
)
@click.option(
    "--useragent", "-u", "useragents", multiple=True, metavar="NAME",
    help=f"Thug browser personality (thugrq useragents). Repeatable. Default: {DEFAULT_PERSONALITY}.",
)
@click.option("--all-useragents", is_flag=True, help="Every Thug personality.")
@thug_options
@click.option(
    "--result-ttl", type=click.IntRange(defaults.MIN_RESULT_TTL, defaults.MAX_RESULT_TTL),
    default=defaults.RESULT_TTL, show_default=True,
    metavar="SECONDS", help="How long results (and failures) are kept.",
)
@click.option(
    "--job-timeout", type=click.IntRange(1, defaults.MAX_JOB_TIMEOUT), metavar="SECONDS",
    help="Hard limit for a job, after which the worker kills it. "
    f"Default: the analysis timeout + {defaults.JOB_TIMEOUT_MARGIN}.",
)
@click.option("--at-front", is_flag=True, help="Put the jobs at the front of their queues.")
@click.option(
    "--retries", type=click.IntRange(0, defaults.MAX_RETRIES), default=defaults.DEFAULT_RETRIES,
    show_default=True,
    help="Runs again, with backoff, of a job whose worker or work horse died.",
)
@click.option(
    "--dedupe", type=click.IntRange(0, defaults.MAX_DEDUPE), default=0, metavar="SECONDS",
    help="Reuse the job of an identical URL x queue x options enqueued in the last SECONDS.",
)
@click.option("--wait", "-w", is_flag=True, help="Wait for the analyses and print their outcome.")
@json_option()
@pass_redis
def enqueue(
    target: RedisTarget,
    urls: tuple[str, ...],
    url_file: str | None,
    countries: tuple[str, ...],
    country_file: str | None,
    generic: bool,
    queues: tuple[str, ...],
    useragents: tuple[str, ...],
    all_useragents: bool,
    result_ttl: int,
    job_timeout: int | None,
    at_front: bool,
    retries: int,
    dedupe: int,
    wait: bool,
    output: Output,
    **thug: Any,
) -> None:
    """Queue a Thug analysis of each URL, on each queue, as each personality.

    Every job is one URL x one queue x one personality, and one `enqueue` is one group
    (its id is printed on stderr; `thugrq group ID` compares what each country and
    personality saw). Without a country or queue, jobs go to `generic`.

    Prints one job id per line (with --json, one object with id, url, queue, useragent and
    group). All input is checked first: if anything is invalid, nothing is enqueued.
    With --wait, prints each job's outcome instead (with --json, each object has the group's
    id too) and exits non-zero if any did not complete. When a dashboard is known (the local
    stack's, or THUGRQ_DASHBOARD_URL), the address of the group's page is printed on stderr.

    \b
    Examples:
      thugrq enqueue http://example.com/ --country IT --country US --generic
      thugrq enqueue -f urls.txt --all-useragents --wait
      thugrq enqueue http://example.com/ --proxy socks5h://127.0.0.1:9050 --events click
    """
    with failures(InvalidInput):
        if url_file:
            urls += tuple(submit.read_urls(_lines(url_file), url_file))
        targets = list(queues) + [country_code(country) for country in countries]
        if country_file:
            targets += submit.read_countries(_lines(country_file), country_file)
        if generic or not targets:
            targets.append(config.GENERIC_QUEUE)
        personalities = list(PERSONALITIES) if all_useragents else list(useragents)
        plan = submit.Plan(  # checks everything, personalities included, before connecting
            urls, targets, options_from(thug), personalities, result_ttl=result_ttl,
            job_timeout=job_timeout, at_front=at_front, dedupe=dedupe, retries=retries,
        )
        base = dashboard_base(target.url)
        connection = target.connect()
        redis_check.warn_once(target.url, partial(click.echo, err=True))
        with progress(plan.size, "enqueueing", threshold=1000) as bar:
            submission = plan.enqueue(connection, on_progress=bar.update)
    reused = sum(job.reused for job in submission.jobs)
    click.echo(
        f"enqueued {len(submission.jobs) - reused} job(s)"
        + (f", reused {reused} (--dedupe)" if reused else "")
        + f" in group {submission.group}",
        err=True,
    )
    if base:
        click.echo(f"group page: {links.group_page(base, submission.group)}", err=True)
    for name in plan.unserved(connection):
        click.echo(f"warning: no live worker serves {name}: its jobs wait until one starts", err=True)
    if wait:
        wait_and_report(connection, [job.id for job in submission.jobs], output, None, submission.group)
        return
    output.rows(
        [{**dataclasses.asdict(job), "group": submission.group} for job in submission.jobs],
        _print_ids,
    )


def _print_ids(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        click.echo(row["id"])


@click.command(name="options")
@json_option()
def options_command(output: Output) -> None:
    """List the analysis options a submitter may set, with types and defaults."""
    output.rows(describe(), _print_options)


def _print_options(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        flag = "--" + entry["name"].replace("_", "-")
        default = "" if entry["default"] in (None, (), []) else f" (default: {entry['default']})"
        click.echo(f"{flag:<26} {entry['type']:<8} {entry['help']}{default}")


@click.command()
def useragents() -> None:
    """List Thug's browser personalities (values for --useragent)."""
    for name, description in PERSONALITIES.items():
        click.echo(f"{name:<18} {description}")


COMMANDS = (enqueue, options_command, useragents)
