"""`thugrq`: submit Thug analyses to the fleet and read what came back.

Each command is a thin layer over `thugrq.submit`. Job ids and results go to stdout, messages
to stderr, so the output can be piped into other tools.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import redis
from rq.job import JobStatus

from thugrq import config, dashboard, defaults, fleet, geo, quarantine, submit
from thugrq.countries import country_code
from thugrq.exceptions import ConfigError, GeoError, InvalidInput, UnknownJob
from thugrq.job import Outcome, outcome, state
from thugrq.job import result as job_result
from thugrq.options import Options, describe
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES
from thugrq.queue import ThugrqQueue
from thugrq.results import STATUS_COMPLETED, format_summary

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Failure(click.ClickException):
    """A clear one-line error and a non-zero exit, never a traceback."""


#: The (password-less) URL of the Redis the running command talks to, for error messages.
_connected_to = "Redis"


def _connect(ctx: click.Context) -> redis.Redis:
    global _connected_to
    _connected_to = config.redacted(config.redis_url(ctx.obj["redis_url"]))
    try:
        return config.connect(ctx.obj["redis_url"])
    except ConfigError as error:
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


def thug_options(command):
    """Add a flag for every analysis option of `Options` (but the user agent) to `command`."""
    for field in reversed(dataclasses.fields(Options)):
        if field.name == "useragent":
            continue
        kind, check = field.metadata["kind"], field.metadata["check"]
        flag = "--" + field.name.replace("_", "-")
        if kind is bool and field.default:
            decorator = click.option(
                "--no-" + field.name.replace("_", "-"), field.name, flag_value=False,
                default=True, help="Turn off: " + field.metadata["help"][0].lower()
                + field.metadata["help"][1:],
            )
        elif kind is bool:
            decorator = click.option(flag, field.name, is_flag=True, help=field.metadata["help"])
        else:
            decorator = click.option(
                flag,
                field.name,
                type=click.IntRange(*check.bounds) if kind is int else str,
                default=field.default if field.default != () else None,
                show_default=field.default not in (None, ()),
                metavar=field.metadata["metavar"],
                help=field.metadata["help"],
                callback=_split_commas if kind is list else None,
            )
        command = decorator(command)
    return command


def _split_commas(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple:
    return tuple(item.strip().lower() for item in value.split(",") if item.strip()) if value else ()


def options_from(params: dict[str, Any], useragent: str = DEFAULT_PERSONALITY) -> Options:
    """Options from the flags `thug_options` added (InvalidInput when a value is refused)."""
    names = {field.name for field in dataclasses.fields(Options)} - {"useragent"}
    return Options(useragent=useragent, **{name: params[name] for name in names})


def _lines(path: str) -> list[str]:
    """The lines of a file, or of stdin for `-`."""
    if path == "-":
        return sys.stdin.read().splitlines()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise Failure(f"cannot read {path}: {error}") from error


@cli.command()
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
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of text.")
@click.pass_context
def enqueue(
    ctx: click.Context,
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
    as_json: bool,
    **thug: Any,
) -> None:
    """Queue a Thug analysis of each URL, on each queue, as each personality.

    Every job is one URL x one queue x one personality, and one `enqueue` is one group
    (its id is printed on stderr; `thugrq group ID` compares what each country and
    personality saw). Without a country or queue, jobs go to `generic`.

    Prints one job id per line (with --json, one object with id, url, queue, useragent and
    group). All input is checked first: if anything is invalid, nothing is enqueued.
    With --wait, prints each job's outcome instead and exits non-zero if any did not complete.

    \b
    Examples:
      thugrq enqueue http://example.com/ --country IT --country US --generic
      thugrq enqueue -f urls.txt --all-useragents --wait
      thugrq enqueue http://example.com/ --proxy socks5h://127.0.0.1:9050 --events click
    """
    try:
        if url_file:
            urls += tuple(submit.read_urls(_lines(url_file), url_file))
        targets = list(queues) + [country_code(country) for country in countries]
        if country_file:
            targets += submit.read_countries(_lines(country_file), country_file)
        if generic or not targets:
            targets.append(config.GENERIC_QUEUE)
        personalities = list(PERSONALITIES) if all_useragents else list(useragents)
        base = options_from(thug)
        variants = [options_from(thug, ua) for ua in personalities]  # checks each name
        checked_urls, names = submit.validate(urls, targets)  # before connecting
        connection = _connect(ctx)
        total = len(checked_urls) * len(names) * max(1, len(variants))
        with _progress(total, "enqueueing", threshold=1000) as bar:
            submission = submit.enqueue(
                connection, checked_urls, names, base, [v.useragent for v in variants],
                result_ttl=result_ttl, job_timeout=job_timeout, at_front=at_front,
                dedupe=dedupe, retries=retries, on_progress=bar.update,
            )
    except InvalidInput as error:
        raise Failure(str(error)) from error
    reused = sum(job.reused for job in submission.jobs)
    click.echo(
        f"enqueued {len(submission.jobs) - reused} job(s)"
        + (f", reused {reused} (--dedupe)" if reused else "")
        + f" in group {submission.group}",
        err=True,
    )
    served = fleet.served_queues(connection)
    for name in names:
        if name != config.GENERIC_QUEUE and name not in served:
            click.echo(f"warning: no live worker serves {name}: its jobs wait until one starts", err=True)
    if wait:
        _wait_and_report(connection, [job.id for job in submission.jobs], as_json, None)
        return
    for job in submission.jobs:
        if as_json:
            _echo_json({**dataclasses.asdict(job), "group": submission.group})
        else:
            click.echo(job.id)


def _progress(length: int, label: str, threshold: int = 0):
    """A progress bar on stderr when it is a terminal and the work is big enough."""
    show = sys.stderr.isatty() and length >= threshold
    return click.progressbar(
        length=length, label=label, file=sys.stderr if show else open(os.devnull, "w")
    )


def _wait_and_report(
    connection: redis.Redis, job_ids: list[str], as_json: bool, timeout: float | None
) -> list[Outcome]:
    with _progress(len(job_ids), "analysing") as bar:
        submit.wait(connection, job_ids, timeout=timeout, on_progress=bar.update)
    outcomes = [outcome(connection, job_id) for job_id in job_ids]
    _print_outcomes(outcomes, as_json)
    if not all(o.ok for o in outcomes):
        sys.exit(1)
    return outcomes


def _print_outcomes(outcomes: list[Outcome], as_json: bool) -> None:
    if as_json:
        for row in outcomes:
            _echo_json(row.to_dict())
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


def _job_ids(connection: redis.Redis, job_ids: tuple[str, ...], group: str | None) -> list[str]:
    if bool(job_ids) == bool(group):
        raise click.UsageError("give job ids or --group ID (one of the two)")
    try:
        return list(job_ids) or submit.group_jobs(connection, group)
    except UnknownJob as error:
        raise Failure(str(error)) from error


@cli.command(name="wait")
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--group", "-g", metavar="ID", help="Wait for every job of this group.")
@click.option("--timeout", type=float, metavar="SECONDS", help="Stop waiting after SECONDS.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def wait_command(
    ctx: click.Context, job_ids: tuple[str, ...], group: str | None, timeout: float | None,
    as_json: bool,
) -> None:
    """Wait for jobs to end, then print each outcome (status, final URL, exploits, samples).

    Exits non-zero when any job failed, timed out, or is still unfinished.
    """
    connection = _connect(ctx)
    _wait_and_report(connection, _job_ids(connection, job_ids, group), as_json, timeout)


@cli.command(name="group")
@click.argument("group_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def group_command(ctx: click.Context, group_id: str, as_json: bool) -> None:
    """Show every job of a group and compare the finished analyses of each URL.

    The comparison names each URL whose final URL, redirect chain, exploits or samples
    differ between countries or personalities, and who saw what: the mark of cloaking.
    """
    connection = _connect(ctx)
    outcomes = [outcome(connection, job_id) for job_id in _job_ids(connection, (), group_id)]
    differences = submit.compare_outcomes(outcomes)
    if as_json:
        click.echo(json.dumps({
            "group": group_id,
            "jobs": [o.to_dict() for o in outcomes],
            "differences": [d.to_dict() for d in differences],
        }, indent=2, sort_keys=True))
        return
    _print_outcomes(outcomes, as_json=False)
    finished = sum(o.summary is not None for o in outcomes)
    click.echo(f"\n{finished} of {len(outcomes)} analyses finished.")
    if not differences:
        click.echo("No differences between the finished analyses of each URL.")
    for difference in differences:
        click.echo(f"\nDIFFERENT {difference.aspect} for {difference.url}:")
        for value, who in difference.seen.items():
            click.echo(f"  {', '.join(who)}:\n    {value}")


@cli.command()
@click.argument("job_ids", nargs=-1, metavar="[ID]...")
@click.option("--group", "-g", metavar="ID", help="Export every finished job of this group.")
@click.option(
    "--output", "-o", "directory", required=True, metavar="DIR",
    type=click.Path(file_okay=False, writable=True), help="Directory to write into (created).",
)
@click.pass_context
def export(ctx: click.Context, job_ids: tuple[str, ...], group: str | None, directory: str) -> None:
    """Write each finished job's result document to DIR/ID.json, for other tools.

    Jobs without a result are named on stderr, and the exit status is then non-zero.
    """
    connection = _connect(ctx)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    missing = 0
    for job_id in _job_ids(connection, job_ids, group):
        try:
            current, document = job_result(connection, job_id)
        except UnknownJob as error:
            click.echo(f"{job_id}: {error}", err=True)
            missing += 1
            continue
        if document is None:
            click.echo(f"{job_id}: not exported, the job is {current.status}", err=True)
            missing += 1
            continue
        path = target / f"{current.id}.json"
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        click.echo(str(path))
    if missing:
        sys.exit(1)


@cli.command(name="options")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def options_command(as_json: bool) -> None:
    """List the analysis options a submitter may set, with types and defaults."""
    for entry in describe():
        if as_json:
            _echo_json(entry)
        else:
            flag = "--" + entry["name"].replace("_", "-")
            default = "" if entry["default"] in (None, (), []) else f" (default: {entry['default']})"
            click.echo(f"{flag:<26} {entry['type']:<8} {entry['help']}{default}")


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
            current = state(connection, job_id)
        except UnknownJob as error:
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
        current, document = job_result(connection, job_id)
    except UnknownJob as error:
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


@cli.command(name="quarantine")
@click.option("--purge", is_flag=True, help="Delete the records, and the keys moved aside with them.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def quarantine_command(ctx: click.Context, purge: bool, as_json: bool) -> None:
    """List the queue entries workers moved aside because nobody could read them.

    Anyone who may push to a queue can write an id of any bytes, or make a job key a string;
    workers move such entries aside instead of stopping on them. Each record says where the
    entry was, why it was moved, and where a key of the wrong type went. Newest first.
    """
    connection = _connect(ctx)
    if purge:
        click.echo(f"purged {quarantine.purge(connection)} record(s)", err=True)
        return
    records = quarantine.records(connection)
    if as_json:
        for record in records:
            _echo_json(record)
        return
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
    except GeoError as error:
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


@cli.command(name="dashboard")
@click.option(
    "--bind", "-b", default=dashboard.DEFAULT_BIND, show_default=True, metavar="ADDRESS",
    help="Address to listen on. Anything but loopback needs --username and --password.",
)
@click.option(
    "--port", "-p", type=click.IntRange(1, 65535), default=config.DEFAULT_DASHBOARD_PORT,
    show_default=True, envvar=config.DASHBOARD_PORT_VARIABLE, show_envvar=True,
    help="Port to listen on.",
)
@click.option(
    "--username", envvar="THUGRQ_DASHBOARD_USERNAME", show_envvar=True, metavar="NAME",
    help="Require HTTP basic auth with this username (and --password) on every request.",
)
@click.option(
    "--password", envvar="THUGRQ_DASHBOARD_PASSWORD", show_envvar=True, metavar="SECRET",
    help="The password for --username; the variable keeps it out of the process list.",
)
@click.option(
    "--allowed-host", "allowed_hosts", multiple=True, type=dashboard.AllowedHost(),
    envvar="THUGRQ_DASHBOARD_ALLOWED_HOSTS", show_envvar=True, metavar="NAME[:PORT]",
    help="Also answer requests for this Host, on any port unless given one (repeatable; the "
    "variable takes a comma-separated list). Any other Host than the bind address (on "
    "loopback also localhost, 127.0.0.1 and [::1]; on 0.0.0.0 or :: any address) with --port "
    "gets 400.",
)
@click.pass_context
def dashboard_command(
    ctx: click.Context, bind: str, port: int, username: str | None, password: str | None,
    allowed_hosts: tuple[str, ...],
) -> None:
    """Serve rq-dashboard for thugrq's Redis.

    Until interrupted: queues with their counts, workers (named COUNTRY.host.pid) with their
    queues and current job, and each job with its description (URL, personality, queue) and
    result document. It reads thugrq's JSON jobs, and shows an analysed page's markup as text.

    It listens on 127.0.0.1 unless told otherwise, and refuses any other address without
    --username and --password (plain HTTP: put TLS in front of it to go beyond a trusted
    network).
    """
    redis_url = config.redis_url(ctx.obj["redis_url"])
    try:
        dashboard.check_bind(bind, username, password)
        _connect(ctx)
        dashboard.serve(
            redis_url, bind, port, username, password, allowed_hosts=allowed_hosts,
            on_ready=lambda url: click.echo(
                f"rq-dashboard for thugrq at {url} on {config.redacted(redis_url)}", err=True
            ),
        )
    except ConfigError as error:
        raise Failure(str(error)) from error


@cli.command()
@click.option(
    "--workers", "-n", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Workers to have running (on the generic queue); up never stops one.",
)
@click.option(
    "--dashboard-port", type=click.IntRange(1, 65535), metavar="PORT",
    help=f"Serve the dashboard on PORT (default: ${config.DASHBOARD_PORT_VARIABLE}, else "
    f"{config.DEFAULT_DASHBOARD_PORT}, else a free port when that one is taken).",
)
@click.pass_context
def up(ctx: click.Context, workers: int, dashboard_port: int | None) -> None:
    """Start the local stack: Redis, workers, dashboard.

    Starts what is missing of it: the embedded Redis (unless one is configured), background
    workers serving `generic`, and the dashboard on 127.0.0.1, then prints where they are.

    Running it again starts nothing that is already running. Logs and pid files go to the
    user's data directory (~/.local/share/thugrq, or $THUGRQ_HOME); `thugrq down` stops
    the stack.
    """
    from thugrq import local  # not at the top: local's ./bin/run command imports this module

    try:
        stack = local.up(workers, dashboard_port, redis_url=ctx.obj["redis_url"])
    except ConfigError as error:
        raise Failure(str(error)) from error
    click.echo(f"redis      {config.redacted(stack.redis_url)}")
    click.echo(f"workers    {len(stack.workers)} (logs: {stack.directory}/worker-N.log)")
    click.echo(f"dashboard  {stack.dashboard_url}")


@cli.command()
@click.option(
    "--grace", type=click.FloatRange(0), default=defaults.STOP_GRACE, show_default=True,
    metavar="SECONDS",
    help="How long a busy worker may take to finish its analysis before it is stopped anyway.",
)
def down(grace: float) -> None:
    """Stop the local stack that `thugrq up` started.

    Stops the dashboard, the workers and their analyses, and the embedded Redis (its data
    stays), as `./bin/run --stop` does. A Redis that thugrq did not start is left alone.
    """
    from thugrq import local  # not at the top: local's ./bin/run command imports this module

    try:
        stopped = local.down(grace=grace)
    except ConfigError as error:
        raise Failure(str(error)) from error
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "nothing was running", err=True)


@cli.command()
def useragents() -> None:
    """List Thug's browser personalities (values for --useragent)."""
    for name, description in PERSONALITIES.items():
        click.echo(f"{name:<18} {description}")


def main() -> None:
    try:
        cli(prog_name="thugrq")
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        # Redis went away in the middle of a command: one line, never a traceback.
        click.echo(f"Error: lost the connection to Redis at {_connected_to} ({error})", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
