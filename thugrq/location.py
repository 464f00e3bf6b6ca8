"""A worker's location kept true while it runs (DESIGN.md, "Location that stays true").

A worker that found its country through DNS (thugrq.geo) looks it up again every `recheck`
seconds while idle, and before a country job when its last check is older than that: a VPN
reconnects, a laptop moves, a cloud host gets a new address. A changed country moves the
worker: it serves the new country's queue (and generic) instead of the old one, in its own queue
list, RQ's registration and its fleet record. A failed lookup leaves it `generic` only until one
succeeds: a guess would let a result lie about where it was analysed from. A worker told its
country (`--country`) or its queues (`--queue`) keeps them. Behind a proxy (`--proxy`), every
check locates the proxy's exit, through the proxy: a dead proxy is a failed lookup.

`Keeper` holds the location and when it was checked; `keep` and `put_back` act on the worker
(thugrq.worker calls them from RQ's work loop).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone

from rq import Queue, Worker
from rq.job import Job
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from thugrq import fleet, geo
from thugrq.config import GENERIC_QUEUE
from thugrq.context import Identity, Whereabouts
from thugrq.countries import country_code
from thugrq.exceptions import GeoError
from thugrq.proxy import Proxy

#: Seconds between a located worker's checks of its location (`thugrq-worker --recheck`).
DEFAULT_RECHECK = 300

log = logging.getLogger("thugrq.location")


class Keeper:
    """Where a worker stands: told once, or looked up by `lookup` and re-checked when due."""

    def __init__(
        self,
        lookup: Callable[[], geo.Location] | None,
        recheck: float = DEFAULT_RECHECK,
        *,
        country: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        proxy: Proxy | None = None,
    ) -> None:
        self._lookup = lookup
        self.recheck = recheck
        self._given = country
        self._clock = clock
        #: The proxy whose exit `lookup` locates (None: this host), for what the log says.
        self.proxy = proxy
        self._checked_at = -math.inf
        #: Whether the address changed since the worker last dropped its connections (see keep).
        self.moved = False
        #: The last check's finding (None: it failed, or nothing was looked up).
        self.found: geo.Location | None = None
        #: The last check, as results record it (None: nothing was looked up).
        self.whereabouts: Whereabouts | None = None

    @classmethod
    def given(cls, country: str | None) -> Keeper:
        """A worker told its country, or its queues: nothing is looked up or re-checked."""
        return cls(None, country=country)

    @property
    def rechecks(self) -> bool:
        return self._lookup is not None

    @property
    def country(self) -> str | None:
        """The country a country job must belong to for this worker to start it."""
        if not self.rechecks:
            return self._given
        return self.found.country if self.found else None

    @property
    def address(self) -> str | None:
        """The public address the last check found (the proxy's exit, behind one)."""
        return self.found.address if self.found else None

    @property
    def asn(self) -> int | None:
        return self.found.asn if self.found else None

    @property
    def as_name(self) -> str | None:
        return self.found.as_name if self.found else None

    def due(self) -> bool:
        return self.rechecks and self._clock() - self._checked_at >= self.recheck

    def check(self, required: bool = False) -> None:
        """Look the location up now and log what changed; a failure leaves no country (with
        `required`, it raises the GeoError instead)."""
        assert self._lookup is not None, "a worker told its country has nothing to check"
        first, before, error = self.whereabouts is None, self.found, None
        try:
            self.found = self._lookup()
        except GeoError as failure:
            if required:
                raise
            self.found, error = None, failure
        self._checked_at = self._clock()
        self.moved |= bool(before and self.found and before.address != self.found.address)
        self.whereabouts = Whereabouts(
            *(getattr(self.found, name, None) for name in ("address", "country", "asn", "as_name")),
            checked=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        via = f" through proxy {self.proxy}" if self.proxy else ""
        _log_change(via, first, before, self.found, error)

    def queues(self) -> list[str] | None:
        """The queues the location calls for; None for a worker that keeps the ones it was given."""
        return fleet.queues_for(self.country) if self.rechecks else None

    def wait_limit(self, timeout: int) -> int:
        """How long an idle worker may block waiting for a job: it must wake to re-check."""
        return min(timeout, max(1, math.ceil(self.recheck))) if self.rechecks else timeout

    def may_start(self, queue: str) -> bool:
        """Whether a job from `queue` may start here: a country job only where the location,
        re-checked first when due or when the proxy stopped answering (its exit is then
        unknown), is that country."""
        if not self.rechecks or queue == GENERIC_QUEUE:
            return True
        if self.due() or (self.proxy and self.proxy.probe()):
            self.check()
        return self.country == queue

    def identity(self, name: str) -> Identity:
        """Who runs the next analysis, and where it is verified to stand (thugrq.context)."""
        return Identity(name, self.country, self.asn, self.whereabouts)


def for_worker(
    country: str | None, public_ip: str | None, require_country: bool, recheck: float,
    proxy: Proxy | None = None,
) -> Keeper:
    """A worker's keeper: told its country, or located now through DNS (at `public_ip`, when
    given; through `proxy`, at its exit, when given). A failed first lookup leaves it generic
    only, or with `require_country` raises the GeoError, which names the step that failed."""
    if country:
        return Keeper.given(country_code(country))
    keeper = Keeper(lambda: geo.locate(public_ip, proxy), recheck, proxy=proxy)
    keeper.check(required=require_country)
    return keeper


def _log_change(
    via: str, first: bool, before: geo.Location | None, after: geo.Location | None,
    error: GeoError | None,
) -> None:
    """Say what a check found at start-up, and later when the location was lost, found again
    or moved (not every check: they come every few minutes); `via` names the proxy, if any."""
    if after is None:
        if first:
            log.warning(
                "cannot find this host's country%s (%s): serving %s only; use --country CC to "
                "set it", via, error, GENERIC_QUEUE,
            )
        elif before is not None:
            log.warning(
                "location lookup failed (%s): no country jobs until a lookup succeeds", error
            )
        return
    as_name = f"AS{after.asn} {after.as_name or ''}".rstrip()
    where = f"{after.address} in {after.country} ({as_name}){via}"
    if first:
        log.info("this host is %s", where)
    elif before is None:
        log.warning("location found again: this host is %s", where)
    elif (before.address, before.country) != (after.address, after.country):
        log.warning(
            "this host moved: it is now %s, was %s in %s", where, before.address, before.country
        )


def keep(worker: Worker, keeper: Keeper) -> None:
    """Between jobs: re-check the location when due, and serve the queues it calls for."""
    if keeper.due():
        keeper.check()
    reconnect_if_moved(worker, keeper)
    wanted = keeper.queues()
    if wanted is not None and wanted != worker.queue_names():
        move(worker, keeper, wanted)


def reconnect_if_moved(worker: Worker, keeper: Keeper) -> None:
    """Drop every Redis connection once the address changed, the worker's and those of its RQ
    scheduler (a pool of its own): those made from the old address are dead but nothing says
    so, and each would hold the worker for a socket timeout first."""
    if keeper.moved:
        worker.connection.connection_pool.disconnect()
        if worker.scheduler is not None:
            worker.scheduler.connection.connection_pool.disconnect()
        keeper.moved = False


def move(worker: Worker, keeper: Keeper, names: list[str]) -> None:
    """Serve `names` instead of the worker's queues: in RQ's registration (its sets of workers
    by queue, the worker hash's `queues`) and the fleet record, then in the worker's own queue
    list, last, so that a Redis lost midway leaves the move to be made again."""
    old = worker.queue_names()
    with worker.connection.pipeline() as pipeline:
        for name in set(old) - set(names):
            pipeline.srem(WORKERS_BY_QUEUE_KEY % name, worker.key)
        for name in names:
            pipeline.sadd(WORKERS_BY_QUEUE_KEY % name, worker.key)
        pipeline.hset(worker.key, "queues", ",".join(names))
        fleet.relocate(
            pipeline, worker.name, keeper.country, keeper.asn, keeper.as_name, names,
            keeper.address,
        )
        pipeline.execute()
    worker.queues = [
        worker.queue_class(
            name, connection=worker.connection, job_class=worker.job_class,
            serializer=worker.serializer,
        )
        for name in names
    ]
    worker._ordered_queues = worker.queues[:]
    log.warning("worker %s now serves %s (was %s)", worker.name, ", ".join(names), ", ".join(old))


def put_back(job: Job, queue: Queue, country: str | None) -> None:
    """Return a country job this worker may not start (it stands in `country`) to the front of
    its queue, as it was dequeued: not started, no failure counted."""
    with queue.connection.pipeline() as pipeline:
        pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
        queue.push_job_id(job.id, pipeline=pipeline, at_front=True)
        pipeline.execute()
    log.warning(
        "job %s put back at the front of %s: this worker stands in %s",
        job.id, queue.name, country or "no verified country",
    )
