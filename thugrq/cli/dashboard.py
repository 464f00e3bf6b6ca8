"""`thugrq dashboard`: rq-dashboard for thugrq's Redis (thugrq.dashboard).

The local stack runs this module on its own (`python -m thugrq.cli.dashboard --port N`, its
Redis URL in THUGRQ_REDIS_URL), so that its dashboard loads no other command.
"""

from __future__ import annotations

from typing import Any

import click

from thugrq import config, dashboard
from thugrq import dashboard_guard as guard
from thugrq.cli.helpers import CONTEXT, RedisTarget, failures, pass_redis
from thugrq.exceptions import ConfigError


class AllowedHost(click.ParamType):
    """An --allowed-host: NAME or NAME:PORT ([IPv6] in brackets); a comma-separated list in
    its environment variable."""

    name = "host"
    envvar_list_splitter = ","

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        value = str(value).strip()
        try:
            guard.host_key(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return value


@click.command(name="dashboard", context_settings=CONTEXT)
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
    "--allowed-host", "allowed_hosts", multiple=True, type=AllowedHost(),
    envvar="THUGRQ_DASHBOARD_ALLOWED_HOSTS", show_envvar=True, metavar="NAME[:PORT]",
    help="Also answer requests for this Host, on any port unless given one (repeatable; the "
    "variable takes a comma-separated list). Any other Host than the bind address (on "
    "loopback also localhost, 127.0.0.1 and [::1]; on 0.0.0.0 or :: any address) with --port "
    "gets 400.",
)
@pass_redis
def dashboard_command(
    target: RedisTarget, bind: str, port: int, username: str | None, password: str | None,
    allowed_hosts: tuple[str, ...],
) -> None:
    """Serve rq-dashboard for thugrq's Redis.

    Until interrupted: queues with their counts, workers (named COUNTRY.host.pid) with their
    queues and current job, and each job with its description (URL, personality, queue) and
    result document. It reads thugrq's JSON jobs, and shows an analysed page's markup as text.

    It listens on 127.0.0.1 unless told otherwise, and refuses any other address without
    --username and --password (plain HTTP: put TLS in front of it to go beyond a trusted
    network). With them it also serves a form that enqueues analyses (/thugrq/submit);
    without them there is no such form.
    """
    with failures(ConfigError):
        dashboard.check_bind(bind, username, password)
        target.connect()
        dashboard.serve(
            target.url, bind, port, username, password, allowed_hosts=allowed_hosts,
            on_ready=lambda url: click.echo(
                f"rq-dashboard for thugrq at {url} on {config.redacted(target.url)}"
                + (f"; the submit form at {url}thugrq/submit" if username else ""),
                err=True,
            ),
        )


COMMANDS = (dashboard_command,)

if __name__ == "__main__":
    dashboard_command(prog_name="thugrq dashboard")
