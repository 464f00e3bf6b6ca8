"""`thugrq up` and `thugrq down`: the embedded local stack (thugrq.stack)."""

from __future__ import annotations

from functools import partial

import click

from thugrq import config, defaults, stack
from thugrq.cli.helpers import RedisTarget, failures, pass_redis
from thugrq.exceptions import ConfigError

#: How the stack's progress reaches the user: a line on stderr each.
report = partial(click.echo, err=True)


@click.command()
@click.option(
    "--workers", "-n", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Workers to have running (on the generic queue); up never stops one.",
)
@click.option(
    "--dashboard-port", type=click.IntRange(1, 65535), metavar="PORT",
    help=f"Serve the dashboard on PORT (default: ${config.DASHBOARD_PORT_VARIABLE}, else "
    f"{config.DEFAULT_DASHBOARD_PORT}, else a free port when that one is taken).",
)
@pass_redis
def up(target: RedisTarget, workers: int, dashboard_port: int | None) -> None:
    """Start the local stack: Redis, workers, dashboard.

    Starts what is missing of it: the embedded Redis (unless one is configured), background
    workers serving `generic`, and the dashboard on 127.0.0.1, then prints where they are.

    Running it again starts nothing that is already running. Logs and pid files go to the
    user's data directory (~/.local/share/thugrq, or $THUGRQ_HOME); `thugrq down` stops
    the stack.
    """
    with failures(ConfigError):
        local = stack.up(workers, dashboard_port, redis_url=target.explicit, report=report)
    click.echo(f"redis      {config.redacted(local.redis_url)}")
    click.echo(f"workers    {len(local.workers)} (logs: {local.directory}/worker-N.log)")
    click.echo(f"dashboard  {local.dashboard_url}")


@click.command()
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
    stop(grace)


def stop(grace: float = defaults.STOP_GRACE) -> None:
    """Stop the local stack and say what was stopped (`down`, `./bin/run --stop`)."""
    with failures(ConfigError):
        stopped = stack.down(grace=grace)
    report(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


COMMANDS = (up, down)
