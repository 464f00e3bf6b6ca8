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

from thugrq import config, fleet, geo, jobs
from thugrq.countries import country_code, queue_name
from thugrq.options import InvalidInput
from thugrq.queue import ThugrqJob, ThugrqQueue

log = logging.getLogger("thugrq.worker")


class ThugrqWorker(Worker):
    """RQ's forking worker with thugrq's job and queue classes and the JSON serializer.

    It keeps its fleet record (country, ASN, Thug version...) alive alongside RQ's own.
    """

    queue_class = ThugrqQueue
    job_class = ThugrqJob

    def __init__(
        self, queues: list[str], *args: Any, location: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("job_class", ThugrqJob)
        kwargs.setdefault("queue_class", ThugrqQueue)
        super().__init__(queues, *args, **kwargs)
        self.location = location or {}

    def register_birth(self) -> None:
        super().register_birth()
        fleet.register(
            self.connection,
            fleet.WorkerRecord(
                name=self.name,
                country=self.location.get("country"),
                asn=self.location.get("asn"),
                as_name=self.location.get("as_name"),
                thug=jobs.thug_versions()["version"],
                queues=self.queue_names(),
                started=fleet.now(),
                last_seen=fleet.now(),
            ),
            ttl=self.worker_ttl + 60,
        )

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline=pipeline)
        fleet.touch(self.connection, self.name, timeout or self.worker_ttl + 60)

    def register_death(self) -> None:
        fleet.unregister(self.connection, self.name)
        super().register_death()


def find_location(
    country: str | None, public_ip: str | None, require_country: bool
) -> dict[str, Any]:
    """Country (and ASN, AS name) of this worker: given, or looked up through DNS.

    A failed lookup is a loud warning (the worker then serves `generic` only), or with
    `require_country` a ClickException naming the step that failed.
    """
    if country:
        return {"country": country_code(country), "asn": None, "as_name": None}
    try:
        location = geo.locate(public_ip)
    except geo.GeoError as error:
        if require_country:
            raise click.ClickException(f"cannot find this host's country: {error}") from error
        log.warning(
            "cannot find this host's country (%s): serving %s only; "
            "use --country CC to set it", error, config.GENERIC_QUEUE,
        )
        return {"country": None, "asn": None, "as_name": None}
    log.info(
        "this host is %s in %s (AS%s %s)",
        location.address, location.country, location.asn, location.as_name or "",
    )
    return {"country": location.country, "asn": location.asn, "as_name": location.as_name}


def default_name(country: str | None) -> str:
    """`IT.host.pid`: the country first, so the dashboard shows where a worker stands."""
    return f"{country or config.GENERIC_QUEUE}.{socket.gethostname()}.{os.getpid()}"


def run(
    queues: list[str],
    *,
    location: dict[str, Any],
    redis_url: str | None = None,
    burst: bool = False,
    name: str | None = None,
) -> bool:
    """Serve `queues` in order of priority; returns whether any job was processed."""
    connection = config.connect(redis_url)
    versions = jobs.thug_versions()  # imports Thug here, once, before any horse is forked
    jobs.worker_identity.update(country=location.get("country"), asn=location.get("asn"))
    worker = ThugrqWorker(
        queues,
        connection=connection,
        name=name or default_name(location.get("country")),
        location=location,
    )
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
    help="Serve exactly these queues, highest priority first: `generic` or a country "
    "(IT, Italy). Repeatable. Default: this host's country, then generic.",
)
@click.option(
    "--country",
    metavar="CC",
    help="This host's country (code or name), instead of looking it up through DNS.",
)
@click.option(
    "--require-country",
    is_flag=True,
    help="Exit non-zero when the country cannot be found, instead of serving generic only.",
)
@click.option(
    "--public-ip",
    metavar="ADDRESS",
    help="This host's public address, instead of asking DNS for it (the country is still "
    "looked up).",
)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@click.option("--name", help="Worker name (default: COUNTRY.host.pid).")
@click.option(
    "--redis-url",
    metavar="URL",
    help="Redis to serve (default: $THUGRQ_REDIS_URL, $REDIS_URL, redis://127.0.0.1:6379/0).",
)
def main(
    queues: tuple[str, ...],
    country: str | None,
    require_country: bool,
    public_ip: str | None,
    burst: bool,
    name: str | None,
    redis_url: str | None,
) -> None:
    """Run Thug analyses from thugrq's queues, one job at a time.

    By default the worker finds its public address and country through DNS (Team Cymru's
    IP-to-ASN service; THUGRQ_DNS=host:port sends every query to one server) and serves its
    country's queue first, then `generic`.

    Each job runs in a fresh forked process; Thug is imported once, before the first job.
    Only `thugrq.jobs.analyze` jobs are run: anything else ends failed as refused.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        config.check_redis_url(config.redis_url(redis_url))
        if queues:
            names = list(dict.fromkeys(queue_name(q) for q in queues))
            location = {"country": country_code(country) if country else None}
        else:
            location = find_location(country, public_ip, require_country)
            names = [location["country"], config.GENERIC_QUEUE] if location["country"] else [
                config.GENERIC_QUEUE
            ]
        run(names, location=location, redis_url=redis_url, burst=burst, name=name)
    except (InvalidInput, config.ConfigError) as error:
        raise click.ClickException(str(error)) from error
    except ImportError as error:
        raise click.ClickException(
            f"Thug is not installed ({error}); install the worker role as the README says"
        ) from error
    sys.exit(0)


if __name__ == "__main__":
    main()
