"""`thugrq`: submit Thug analyses to the fleet and read what came back.

Each command is a thin layer over `thugrq.submit`. Job ids and results go to stdout, messages
to stderr, so the output can be piped into other tools.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import redis
from rq.job import JobStatus

from thugrq import config, fleet, geo, submit
from thugrq.countries import country_code
from thugrq.options import MAX_ANALYSIS_TIMEOUT, InvalidInput, Options
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES
from thugrq.queue import ThugrqQueue
from thugrq.results import STATUS_COMPLETED, format_summary

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Failure(click.ClickException):
    """A clear one-line error and a non-zero exit, never a traceback."""


def _connect(ctx: click.Context) -> redis.Redis:
    try:
        return config.connect(ctx.obj["redis_url"])
    except config.ConfigError as error:
        raise Failure(str(error)) from error


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, sort_keys=True))


@click.group(context_settings=CONTEXT)
@click.option(
    "--redis-url",
    metavar="URL",
    help="Redis holding the queues (default: $THUGRQ_REDIS_URL, $REDIS_URL, "
    "redis://127.0.0.1:6379/0). Credentials and TLS go in the URL: rediss://user:pass@host.",
)
@click.version_option(package_name="thugrq")
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None) -> None:
    """Analyse suspicious URLs with Thug on a fleet of workers, per country, over RQ.

    \b
    Typical use:
      thugrq enqueue http://example.com/ --wait
      thugrq enqueue --country IT --country US http://example.com/   # prints job ids
      thugrq workers; thugrq countries                            # the fleet
      thugrq status ID...
      thugrq result ID
    """
    ctx.obj = {"redis_url": redis_url}


@cli.command()
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    metavar="QUEUE",
    help="Queue: `generic` (any worker) or a country by code or name (IT, it, Italy). "
    "Repeatable: one job per URL and queue. Default: generic.",
)
@click.option(
    "--country",
    "-c",
    "countries",
    multiple=True,
    metavar="COUNTRY",
    help="Country queue, by ISO code or name in any case (it, IT, Italy). Repeatable.",
)
@click.option(
    "--useragent",
    "-u",
    default=DEFAULT_PERSONALITY,
    show_default=True,
    help="Thug browser personality, e.g. win7ie90 (all of them: thugrq useragents).",
)
@click.option("--referer", "-r", metavar="URL", help="Referer of the first request.")
@click.option(
    "--timeout",
    "-T",
    type=click.IntRange(1, MAX_ANALYSIS_TIMEOUT),
    default=config.DEFAULT_ANALYSIS_TIMEOUT,
    show_default=True,
    help="Thug's analysis timeout, in seconds.",
)
@click.option("--wait", "-w", is_flag=True, help="Wait for the analyses and print their outcome.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.pass_context
def enqueue(
    ctx: click.Context,
    urls: tuple[str, ...],
    queues: tuple[str, ...],
    countries: tuple[str, ...],
    useragent: str,
    referer: str | None,
    timeout: int,
    wait: bool,
    as_json: bool,
) -> None:
    """Queue a Thug analysis of each URL on each queue.

    Prints one job id per line (with --json, one object with id, url, queue and useragent).
    All input is checked first: if anything is invalid, nothing is enqueued.
    With --wait, prints each job's outcome instead and exits non-zero if any did not complete.
    """
    try:
        options = Options(useragent=useragent, referer=referer, timeout=timeout)
        targets = list(queues) + [country_code(country) for country in countries]
        _, names = submit.validate(urls, targets or [config.GENERIC_QUEUE])  # before connecting
        connection = _connect(ctx)
        enqueued = submit.enqueue(connection, urls, names, options)
    except InvalidInput as error:
        raise Failure(str(error)) from error
    click.echo(f"enqueued {len(enqueued)} job(s)", err=True)
    served = fleet.served_queues(connection)
    for name in names:
        if name != config.GENERIC_QUEUE and name not in served:
            click.echo(f"warning: no live worker serves {name}: its jobs wait until one starts", err=True)
    if wait:
        _wait_and_report(connection, [job.id for job in enqueued], as_json)
        return
    for job in enqueued:
        if as_json:
            _echo_json(
                {"id": job.id, "url": job.args[0], "queue": job.origin, "useragent": useragent}
            )
        else:
            click.echo(job.id)


def _wait_and_report(connection: redis.Redis, job_ids: list[str], as_json: bool) -> None:
    with click.progressbar(
        length=len(job_ids), label="analysing", file=sys.stderr
    ) as bar:
        states = submit.wait(connection, job_ids, on_progress=bar.update)
    failed = False
    for current in states:
        _, document = submit.result(connection, current.id)
        outcome = (document or {}).get("status") or current.status
        failed |= outcome != STATUS_COMPLETED
        summary = (document or {}).get("summary") or {}
        row = {
            "id": current.id,
            "url": current.url,
            "queue": current.queue,
            "useragent": current.useragent,
            "status": outcome,
            "reason": current.reason or (document or {}).get("error"),
            "final_url": summary.get("final_url"),
            "exploits": len(summary.get("exploits") or []),
            "samples": len(summary.get("samples") or []),
        }
        if as_json:
            _echo_json(row)
        else:
            click.echo(
                f"{row['id']}  {row['status']:<9}  {row['queue']:<7}  {row['useragent']:<14}  "
                f"exploits={row['exploits']} samples={row['samples']}  {row['url']}"
                + (f" -> {row['final_url']}" if row["final_url"] not in (None, row["url"]) else "")
                + (f"  ({row['reason']})" if row["reason"] else "")
            )
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("job_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def status(ctx: click.Context, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Show where each job stands: queued, started, finished, failed (with the reason).

    Exits non-zero if any id is unknown.
    """
    connection = _connect(ctx)
    missing = False
    for job_id in job_ids:
        try:
            current = submit.state(connection, job_id)
        except submit.UnknownJob as error:
            click.echo(f"{job_id}: {error}", err=True)
            missing = True
            continue
        if as_json:
            _echo_json(current.__dict__)
        else:
            reason = f"  ({current.reason})" if current.reason else ""
            click.echo(f"{current.id}  {current.status:<9}  {current.queue}  {current.url}{reason}")
    if missing:
        sys.exit(1)


@cli.command()
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result document as JSON.")
@click.pass_context
def result(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Print the analysis of a finished job: a summary, or with --json the whole document
    (schema thugrq.result/1, including Thug's JSON log).

    Exits 0 only for a finished job; a queued, running, failed or unknown job is reported on
    stderr with a non-zero exit.
    """
    connection = _connect(ctx)
    try:
        current, document = submit.result(connection, job_id)
    except submit.UnknownJob as error:
        raise Failure(str(error)) from error
    if current.status == JobStatus.FAILED:
        raise Failure(f"job {job_id} failed: {current.reason}")
    if document is None:
        message = {
            JobStatus.QUEUED: "is still queued: no worker has taken it yet",
            JobStatus.STARTED: "is being analysed: try again shortly",
        }.get(current.status, f"has no result (status {current.status})")
        raise Failure(f"job {job_id} {message}")
    if as_json:
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        click.echo(format_summary(document))


@cli.command()
@click.pass_context
def queues(ctx: click.Context) -> None:
    """List thugrq's queues with their waiting, running, finished and failed jobs."""
    connection = _connect(ctx)
    click.echo(f"{'QUEUE':<10} {'QUEUED':>7} {'STARTED':>8} {'FINISHED':>9} {'FAILED':>7}")
    for queue in sorted(ThugrqQueue.all(connection=connection), key=lambda q: q.name):
        click.echo(
            f"{queue.name:<10} {queue.count:>7} {queue.started_job_registry.count:>8} "
            f"{queue.finished_job_registry.count:>9} {queue.failed_job_registry.count:>7}"
        )


@cli.command(name="geo")
@click.option("--public-ip", metavar="ADDRESS", help="Locate this address instead of asking DNS.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def geo_command(public_ip: str | None, as_json: bool) -> None:
    """Show this host's public address, country and ASN, and the queues a worker here would serve.

    The lookup goes through DNS: what-is-my-IP services, then Team Cymru's IP-to-ASN records.
    THUGRQ_DNS=host:port sends every query to one server.
    """
    try:
        location = geo.locate(public_ip)
    except geo.GeoError as error:
        raise Failure(f"cannot find this host's country: {error}") from error
    queues = [location.country, config.GENERIC_QUEUE]
    if as_json:
        _echo_json({**location.to_dict(), "queues": queues})
        return
    click.echo(f"address   {location.address}")
    click.echo(f"country   {location.country}")
    click.echo(f"asn       AS{location.asn} {location.as_name or ''}".rstrip())
    click.echo(f"prefix    {location.prefix} ({location.registry})")
    click.echo(f"queues    {', '.join(queues)}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """List live workers: country, ASN, Thug version, queues, started and last seen."""
    records = fleet.workers(_connect(ctx))
    if as_json:
        for record in records:
            _echo_json(record.to_dict())
        return
    if not records:
        click.echo("no live workers", err=True)
        return
    click.echo(f"{'NAME':<32} {'COUNTRY':<7} {'ASN':<8} {'THUG':<6} {'QUEUES':<14} LAST SEEN")
    for record in records:
        click.echo(
            f"{record.name:<32} {record.country or '-':<7} {record.asn or '-':<8} "
            f"{record.thug:<6} {','.join(record.queues):<14} {record.last_seen}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def countries(ctx: click.Context, as_json: bool) -> None:
    """List country queues with their live workers and waiting jobs.

    A country whose jobs wait with no live worker to take them is marked STARVING.
    """
    rows = fleet.countries(_connect(ctx))
    if as_json:
        for row in rows:
            _echo_json(row.to_dict())
        return
    click.echo(f"{'COUNTRY':<8} {'WORKERS':>7} {'WAITING':>7}")
    for row in rows:
        mark = "  STARVING: no live worker" if row.starving else ""
        click.echo(f"{row.country:<8} {row.workers:>7} {row.waiting:>7}{mark}")


@cli.command()
def useragents() -> None:
    """List Thug's browser personalities (values for --useragent)."""
    for name, description in PERSONALITIES.items():
        click.echo(f"{name:<18} {description}")


def main() -> None:
    cli(prog_name="thugrq")
