"""The live view of the fleet: who is working where, and which countries are starving.

Each worker keeps a record under `thugrq:worker:<name>` (country, ASN, AS name, Thug version,
queues, started, last seen). The worker refreshes it with every RQ heartbeat and deletes it when
it stops; a worker that dies without stopping drops out when the record's TTL runs out.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis
from redis.client import Pipeline

from thugrq.config import GENERIC_QUEUE
from thugrq.queue import ThugrqQueue

RECORD_PREFIX = "thugrq:worker:"


@dataclass(frozen=True)
class WorkerRecord:
    name: str
    country: str | None
    asn: int | None
    as_name: str | None
    thug: str
    queues: list[str]
    started: str
    last_seen: str
    #: The public address the worker's last location check found: its proxy's exit, if any.
    address: str | None = None
    #: The proxy its analyses go through (thugrq.proxy: shown without credentials), if any.
    proxy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CountryRow:
    """One country queue: its live workers and waiting jobs."""

    country: str
    workers: int
    waiting: int

    @property
    def starving(self) -> bool:
        """Jobs wait here and no live worker will take them."""
        return self.waiting > 0 and self.workers == 0

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "starving": self.starving}


def queues_for(country: str | None) -> list[str]:
    """The queues a worker in `country` serves, its own first; without a country (its lookup
    failed), `generic` only. Workers listen by it, and `thugrq geo` shows it."""
    return [country, GENERIC_QUEUE] if country else [GENERIC_QUEUE]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def register(connection: redis.Redis, record: WorkerRecord, ttl: int) -> None:
    key = RECORD_PREFIX + record.name
    pipeline = connection.pipeline()
    pipeline.delete(key)
    pipeline.hset(key, mapping={k: json.dumps(v) for k, v in record.to_dict().items()})
    pipeline.expire(key, ttl)
    pipeline.execute()


def touch(connection: redis.Redis, name: str, ttl: int) -> bool:
    """Mark the worker seen now and keep its record for another `ttl` seconds; False when the
    record is gone (it expired while the worker was cut off), which the worker must register
    again rather than leave a record of `last_seen` alone, which nobody would list."""
    key = RECORD_PREFIX + name
    if not connection.expire(key, ttl):
        return False
    connection.hset(key, "last_seen", json.dumps(now()))
    return True


def relocate(
    connection: redis.Redis | Pipeline,
    name: str,
    country: str | None,
    asn: int | None,
    as_name: str | None,
    queues: list[str],
    address: str | None = None,
) -> None:
    """Record where a worker now stands and the queues it now serves (thugrq.location)."""
    fields = {"country": country, "asn": asn, "as_name": as_name, "queues": queues, "address": address}
    connection.hset(RECORD_PREFIX + name, mapping={k: json.dumps(v) for k, v in fields.items()})


def unregister(connection: redis.Redis, name: str) -> None:
    connection.delete(RECORD_PREFIX + name)


def workers(connection: redis.Redis) -> list[WorkerRecord]:
    """Every live worker's record, by name."""
    fields = dataclasses.fields(WorkerRecord)
    records = []
    for key in sorted(connection.scan_iter(match=RECORD_PREFIX + "*", count=500)):
        raw = connection.hgetall(key)
        try:
            values = {  # a field with a default may be missing: a record of an older worker
                field.name: json.loads(raw[field.name.encode()]) for field in fields
                if field.name.encode() in raw or field.default is dataclasses.MISSING
            }
        except (KeyError, ValueError):
            continue  # half-written or expired between SCAN and HGETALL
        records.append(WorkerRecord(**values))
    return records


def served_queues(connection: redis.Redis) -> set[str]:
    return {queue for record in workers(connection) for queue in record.queues}


def countries(connection: redis.Redis) -> list[CountryRow]:
    """Every country with a queue or a live worker, with worker and waiting-job counts."""
    live = workers(connection)
    waiting = {
        queue.name: queue.count
        for queue in ThugrqQueue.all(connection=connection)
        if queue.name != GENERIC_QUEUE
    }
    names = set(waiting) | {r.country for r in live if r.country}
    return [
        CountryRow(
            country=name,
            workers=sum(1 for record in live if name in record.queues),
            waiting=waiting.get(name, 0),
        )
        for name in sorted(names)
    ]
