"""`thugrq-worker`: serve thugrq's queues with Thug on this host (thugrq.worker).

The local stack runs this module too (`python -m thugrq.cli.worker --queue generic`).
"""

from __future__ import annotations

import logging
import sys

import click

from thugrq import classifiers, config, fleet, location, redis_check, worker
from thugrq.cli.helpers import CONTEXT, NO_COUNTRY, Failure, failures, proxy_option
from thugrq.countries import country_code, queue_name
from thugrq.defaults import DEFAULT_MAX_MEMORY, DEFAULT_MAX_RESULT_BYTES, MIB, MIN_MAX_RESULT_BYTES
from thugrq.exceptions import ConfigError, GeoError
from thugrq.proxy import Proxy
from thugrq.samples import DEFAULT_MAX_SAMPLE_BYTES, MAX_SAMPLE_BYTES_VARIABLE, TOO_LARGE
from thugrq.targets import ALLOW_VARIABLE, Policy
from thugrq.worker import WorkerCrashed


@click.command(context_settings=CONTEXT)
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
@click.option(
    "--recheck",
    type=click.IntRange(min=1),
    default=location.DEFAULT_RECHECK,
    show_default=True,
    metavar="SECONDS",
    help="Look this host's location up again this often, and before a country job when the "
    "last check is older: a changed country switches the queues served, a failed lookup leaves "
    "generic only until one succeeds. Not with --country or --queue, which are kept.",
)
@proxy_option(
    "Send every analysis's traffic through this proxy, and locate its exit (DNS over TCP "
    "through it) instead of this host: the country served is the exit's, and none while the "
    "proxy is unreachable."
)
@click.option(
    "--allow-private-targets",
    "allow_private",
    is_flag=False,
    flag_value="all",
    default=None,
    metavar="[NETWORKS]",
    help="Analyse private, loopback and link-local targets too: all of them, or only the "
    "comma-separated networks given (127.0.0.2/32,fd00::/8). Default: refused "
    f"(${ALLOW_VARIABLE}=1 or a list of networks does the same).",
)
@click.option(
    "--max-result-bytes",
    metavar="BYTES",
    help="Store no result document larger than this, as Redis holds it; a page that produces "
    "more gets its log, then its summary's lists, cut, and `truncated` in the result says what "
    f"(default: ${config.MAX_RESULT_BYTES_VARIABLE}, else {DEFAULT_MAX_RESULT_BYTES}; "
    f"at least {MIN_MAX_RESULT_BYTES}).",
)
@click.option(
    "--max-sample-bytes",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_SAMPLE_BYTES,
    envvar=MAX_SAMPLE_BYTES_VARIABLE,
    metavar="BYTES",
    help="Keep in Redis each file an analysis downloads up to this size (once per SHA-256, "
    "compressed, as long as the results of the jobs that downloaded it); a larger one is only "
    f"hashed, and its result says \"{TOO_LARGE}\" (default: ${MAX_SAMPLE_BYTES_VARIABLE}, else "
    f"{DEFAULT_MAX_SAMPLE_BYTES}).",
)
@click.option(
    "--max-memory",
    type=click.IntRange(min=512),
    default=DEFAULT_MAX_MEMORY,
    show_default=True,
    metavar="MIB",
    help="Address-space limit of each analysis, in MiB: one that reaches it fails as `memory "
    "limit exceeded`, not retried.",
)
@click.option(
    "--rules",
    multiple=True,
    metavar="KIND:FILE",
    help="YARA rules for one of Thug's classifiers (html, js, vbs, url, sample, cookie, text, "
    "image), added to Thug's own: each analysis is classified with them too, and its result "
    "lists their matches. Compiled once, at start-up (restart the worker to change them); "
    "repeatable.",
)
@click.option(
    "--warm-up/--no-warm-up",
    default=True,
    envvar="THUGRQ_WARM_UP",
    show_envvar=True,
    help="Before the first job, analyse built-in pages from memory, so that every job's process "
    "starts warm (default: on; about a second at start-up and 40 MiB; a burst worker for one or "
    "two URLs may skip it).",
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
    recheck: int,
    proxy: Proxy | None,
    allow_private: str | None,
    max_result_bytes: str | None,
    max_sample_bytes: int,
    max_memory: int,
    rules: tuple[str, ...],
    warm_up: bool,
    burst: bool,
    name: str | None,
    redis_url: str | None,
) -> None:
    """Run Thug analyses from thugrq's queues, one job at a time.

    By default the worker finds its public address and country through DNS (Team Cymru's
    IP-to-ASN service; THUGRQ_DNS=host:port sends every query to one server) and serves its
    country's queue first, then `generic`; it checks its location again every --recheck
    seconds, and serves the new country's queue when it has moved.

    Each job runs in a fresh forked process; Thug is imported and warmed up once (an analysis
    of a built-in page, from memory), before the first job, so each starts warm.
    Only `thugrq.analysis.analyze` jobs are run: anything else ends failed as refused.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log = logging.getLogger("thugrq")  # the worker's and its location lookup's messages
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    with failures(GeoError, prefix=NO_COUNTRY), failures(ValueError, ConfigError, WorkerCrashed):
        config.check_redis_url(config.redis_url(redis_url))
        redis_check.warn_once(config.redis_url(redis_url), log.warning)
        policy = Policy.parse(allow_private) if allow_private else Policy.from_environment()
        result_bound = config.max_result_bytes(max_result_bytes)
        if queues:
            names = list(dict.fromkeys(queue_name(q) for q in queues))
            keeper = location.Keeper.given(country_code(country) if country else None)
        else:
            keeper = location.for_worker(country, public_ip, require_country, recheck, proxy)
            names = fleet.queues_for(keeper.country)
        try:
            for kind, _, path in (entry.partition(":") for entry in rules):
                classifiers.add_rules(kind, path)
            worker.run(
                names, keeper=keeper, policy=policy, redis_url=redis_url, burst=burst,
                name=name, max_result_bytes=result_bound, max_memory=max_memory * MIB,
                proxy=proxy, max_sample_bytes=max_sample_bytes, warm_up=warm_up,
            )
        except ImportError as error:
            raise Failure(
                f"Thug is not installed ({error}); install the worker role as the README says"
            ) from error
    sys.exit(0)


if __name__ == "__main__":
    main()
