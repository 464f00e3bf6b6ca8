"""The thugrq worker: an RQ forking worker that runs `thugrq.jobs.analyze` and nothing else.

The refusal of any other job lives in `thugrq.queue.ThugrqJob`; this module adds the worker
class, which imports Thug once before forking, and the `thugrq-worker` launcher.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

import click
from rq import Worker
from rq.serializers import JSONSerializer

from thugrq import config, jobs
from thugrq.countries import queue_name
from thugrq.options import InvalidInput
from thugrq.queue import ThugrqJob, ThugrqQueue

log = logging.getLogger("thugrq.worker")


class ThugrqWorker(Worker):
    """RQ's forking worker with thugrq's job and queue classes and the JSON serializer."""

    queue_class = ThugrqQueue
    job_class = ThugrqJob

    def __init__(self, queues: list[str], *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("job_class", ThugrqJob)
        kwargs.setdefault("queue_class", ThugrqQueue)
        super().__init__(queues, *args, **kwargs)


def default_name() -> str:
    return f"{socket.gethostname()}.{os.getpid()}"


def run(
    queues: list[str],
    *,
    redis_url: str | None = None,
    burst: bool = False,
    name: str | None = None,
) -> bool:
    """Serve `queues` in order of priority; returns whether any job was processed."""
    connection = config.connect(redis_url)
    versions = jobs.thug_versions()  # imports Thug here, once, before any horse is forked
    jobs.worker_identity.update({"country": None, "asn": None})
    worker = ThugrqWorker(queues, connection=connection, name=name or default_name())
    log.info(
        "thugrq worker %s: Thug %s (%s %s), queues %s",
        worker.name,
        versions["version"],
        versions["jsengine"],
        versions["jsengine_version"],
        ", ".join(queues),
    )
    return worker.work(burst=burst, logging_level="INFO")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--queue",
    "-q",
    "queues",
    multiple=True,
    metavar="QUEUE",
    help="Queue to serve, highest priority first: `generic` or a country (IT, Italy). "
    "Repeatable. Default: generic.",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--name", help="Worker name shown in `rq info` and the dashboard.")
@click.option(
    "--redis-url",
    metavar="URL",
    help="Redis to serve (default: $THUGRQ_REDIS_URL, $REDIS_URL, redis://127.0.0.1:6379/0).",
)
def main(queues: tuple[str, ...], burst: bool, name: str | None, redis_url: str | None) -> None:
    """Run Thug analyses from thugrq's queues, one job at a time.

    Each job runs in a fresh forked process; Thug is imported once, before the first job.
    Only `thugrq.jobs.analyze` jobs are run: anything else ends failed as refused.
    """
    try:
        names = [queue_name(q) for q in queues] or [config.GENERIC_QUEUE]
        run(names, redis_url=redis_url, burst=burst, name=name)
    except (InvalidInput, config.ConfigError) as error:
        raise click.ClickException(str(error)) from error
    except ImportError as error:
        raise click.ClickException(
            f"Thug is not installed ({error}); install the worker role as the README says"
        ) from error
    sys.exit(0)


if __name__ == "__main__":
    main()
