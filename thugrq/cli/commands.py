"""The `thugrq` command group, with every command of the package registered in it."""

from __future__ import annotations

import click

from thugrq.cli import collect, dashboard, fleet, jobs, samples, stack, submission
from thugrq.cli.helpers import CONTEXT, RedisTarget


class Thugrq(click.Group):
    """A group whose commands report a Redis lost midway in one line (see `RedisTarget`)."""

    def invoke(self, ctx: click.Context) -> object:
        with ctx.ensure_object(RedisTarget).translating():
            return super().invoke(ctx)


@click.group(cls=Thugrq, context_settings=CONTEXT)
@click.option(
    "--redis-url",
    metavar="URL",
    help="Redis holding the queues (default: $THUGRQ_REDIS_URL, $REDIS_URL, "
    "redis://127.0.0.1:6379/0). Credentials and TLS go in the URL: rediss://user:pass@host.",
)
@click.version_option(package_name="thugrq")
@click.pass_context
def main(ctx: click.Context, redis_url: str | None) -> None:
    """Analyse suspicious URLs with Thug on a fleet of workers, per country, over RQ.

    \b
    Typical use:
      thugrq enqueue http://example.com/ --wait
      thugrq enqueue --country IT --country US http://example.com/   # prints job ids
      thugrq workers; thugrq countries                            # the fleet
      thugrq status ID...
      thugrq result ID
      thugrq sample SHA256 -o FILE                                 # a downloaded file, mode 0600
      thugrq collect --to DIR                                      # finished jobs to disk
    """
    ctx.ensure_object(RedisTarget).explicit = redis_url


for module in (submission, jobs, samples, collect, fleet, dashboard, stack):
    for command in module.COMMANDS:
        main.add_command(command)
