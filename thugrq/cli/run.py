"""`./bin/run URL`: analyse one URL on the local stack (`thugrq.stack`), or with a configured
Redis on its live workers (a fleet's, say): then no worker or dashboard of this machine joins
them unless asked (`--local-worker`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import click
import redis

from thugrq import config, fleet, links, redis_check, stack, submit
from thugrq.cli.helpers import CONTEXT, Failure, failures, options_from, thug_options
from thugrq.cli.stack import report, stop as stop_stack
from thugrq.exceptions import ConfigError, InvalidInput
from thugrq.job import result as job_result
from thugrq.personalities import DEFAULT_PERSONALITY
from thugrq.results import STATUS_COMPLETED, STATUS_REFUSED, format_summary


def job_address(dashboard_url: str, job_id: str) -> str:
    """rq-dashboard's page of a job on the dashboard at `dashboard_url` (its base URL)."""
    return f"{dashboard_url.rstrip('/')}/0/view/job/{job_id}"


@dataclass(frozen=True)
class Destination:
    """Where `./bin/run` sends its job: a Redis, and the dashboard if the local stack runs."""

    redis_url: str
    dashboard_url: str | None

    @property
    def runs_here(self) -> bool:
        """Whether the local stack's worker takes the job (else the fleet's workers do)."""
        return self.dashboard_url is not None


def able_workers(connection: redis.Redis) -> list[fleet.WorkerRecord]:
    """The fleet's live workers that can take a `./bin/run` job: those serving `generic`."""
    return [
        record for record in fleet.workers(connection) if config.GENERIC_QUEUE in record.queues
    ]


def destination(local_worker: bool) -> Destination:
    """The local stack (started as needed), or a configured Redis alone unless `local_worker`:
    then its fleet does the job, and no worker or dashboard of this machine joins it unasked."""
    if local_worker or not config.redis_url_configured():
        local = stack.up(workers=1, report=report)
        return Destination(local.redis_url, local.dashboard_url)
    url = config.redis_url()
    able = able_workers(config.connect(url))
    if not able:
        raise ConfigError(
            f"no live worker on {config.redacted(url)} serves the {config.GENERIC_QUEUE} queue, "
            "so nobody would take the job: start one there (thugrq-worker), or analyse on this "
            "machine with ./bin/run --local-worker URL"
        )
    names = ", ".join(record.name for record in able)
    report(f"live workers that can take the job: {names}")
    return Destination(url, None)


@click.command(context_settings=CONTEXT)
@click.argument("url", required=False)
@click.option("--useragent", "-u", default=DEFAULT_PERSONALITY, show_default=True,
              help="Thug browser personality (see `thugrq useragents`).")
@thug_options
@click.option("--local-worker", is_flag=True,
              help="With a configured Redis, start a worker and the dashboard on this machine "
              "too, as the embedded stack does (else the Redis's own workers do the job).")
@click.option("--stop", is_flag=True, help="Stop the local stack (as `thugrq down`), and exit.")
def main(url: str | None, useragent: str, local_worker: bool, stop: bool, **thug: Any) -> None:
    """Analyse URL and print the summary.

    Without a configured Redis, on the local stack, starting what is missing first as `thugrq
    up` does: the embedded Redis, a background worker and the dashboard; they keep running for
    the next run (`--stop` ends them). With one (THUGRQ_REDIS_URL or REDIS_URL), the job goes to
    that Redis's live workers, and nothing starts here unless --local-worker. The address of
    the job's analysis page is printed when a dashboard is known: the local stack's, or
    THUGRQ_DASHBOARD_URL.
    """
    if stop:
        stop_stack()
        return
    if not url:
        raise click.UsageError("give the URL to analyse, or --stop")
    with failures(InvalidInput, ConfigError):
        plan = submit.Plan([url], options=options_from(thug, useragent))  # before starting
        target = destination(local_worker)
        base = links.dashboard_base(target.redis_url)
        connection = config.connect(target.redis_url)
        redis_check.warn_once(target.redis_url, report)
        (job,) = plan.enqueue(connection).jobs
    click.echo(f"job {job.id} on {config.redacted(target.redis_url)}", err=True)
    if base:
        click.echo(f"analysis page: {links.job_page(base, job.id)}", err=True)
        click.echo(f"dashboard: {job_address(base, job.id)}", err=True)
    label = "analysing" if target.runs_here else "waiting for the workers"
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:
        submit.wait(connection, [job.id], on_progress=bar.update)
    current, document = job_result(connection, job.id)
    if document is None:
        raise Failure(f"job {job.id} {current.status}: {current.reason}")
    click.echo(format_summary(document))
    # A configured URL is in the environment already, and may hold a password.
    setting = "" if config.redis_url_configured() else f"THUGRQ_REDIS_URL={target.redis_url} "
    click.echo(f"\nMore: {setting}.venv/bin/thugrq result {job.id} --json", err=True)
    if document["status"] == STATUS_REFUSED:
        click.echo(refusal_advice(target), err=True)
    if document["status"] != STATUS_COMPLETED:
        sys.exit(1)


def refusal_advice(target: Destination) -> str:
    """What to do about a refused private target, for the worker that refused it."""
    if not target.runs_here:
        return "The workers refuse private targets, as every worker does by default."
    return (
        "The local worker refuses private targets, as every worker does by default. To "
        "analyse pages on this machine or your network, stop it (./bin/run --stop) and run "
        "again with THUGRQ_ALLOW_PRIVATE_TARGETS=1."
    )


if __name__ == "__main__":
    main(prog_name="./bin/run")
