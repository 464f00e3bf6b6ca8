"""Queue entries no worker can read, moved aside instead of stopping the worker.

Whoever may push to a queue can write anything there: an id of arbitrary bytes, an id whose
job key is a string, a queue key that is not a list. RQ decodes and reads these before thugrq
can refuse them, and the error ends the worker; left in place, the entry ends the next worker
too, and the next. So a worker checks what it pops (`readable`) and, when RQ's registry
cleaning fails, sweeps the queue's lists and registries (`sweep`): every unreadable entry is
removed from where it was and recorded here, where `thugrq quarantine` lists and purges it.
Keys of the wrong type are renamed aside, with the result TTL, so that the record keeps them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from thugrq import defaults

#: The list of records (JSON), newest first.
KEY = "thugrq:quarantine"
#: Prefix of the keys renamed aside because they held the wrong type.
MOVED_PREFIX = "thugrq:quarantine:key:"
#: Most records kept; the oldest go first.
MAX_RECORDS = 10_000
#: Longest stored (and shown) form of an entry, in bytes of the original.
MAX_SHOWN = 200
JOB_KEY_PREFIX = "rq:job:"

#: RQ's own job id alphabet (rq.job.JOB_ID_PATTERN), bounded. Anything else is not a job id:
#: markup, control characters and undecodable bytes included.
JOB_ID = re.compile(rb"[A-Za-z0-9_-]{1,128}")
#: A started registry's members are `job_id:execution_id`.
REGISTRY_MEMBER = re.compile(rb"([A-Za-z0-9_-]{1,128})(:[A-Za-z0-9_-]{1,128})?")


def shown(raw: bytes | str) -> str:
    """`raw` as printable ASCII (other bytes as \\xNN): safe in a terminal, a log or a page."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    text = "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in data[:MAX_SHOWN])
    return text + ("..." if len(data) > MAX_SHOWN else "")


def record(
    connection: Redis, key: str, entry: bytes | str, reason: str, moved_to: str | None = None
) -> None:
    """Add a record of `entry`, taken out of `key`, to the quarantine."""
    document = {
        "entry": shown(entry),
        "key": shown(key),
        "reason": reason,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "moved_to": moved_to,
    }
    with connection.pipeline(transaction=False) as pipeline:
        pipeline.lpush(KEY, json.dumps(document))
        pipeline.ltrim(KEY, 0, MAX_RECORDS - 1)
        pipeline.expire(KEY, defaults.RESULT_TTL)
        pipeline.execute()


def _type(connection: Redis, key: str) -> str:
    return connection.type(key).decode()


def _rename_aside(connection: Redis, key: str) -> str:
    """Rename `key` out of RQ's way, kept for the result TTL; its new name."""
    moved_to = MOVED_PREFIX + uuid.uuid4().hex
    connection.rename(key, moved_to)
    connection.expire(moved_to, defaults.RESULT_TTL)
    return moved_to


def set_aside_wrong_types(connection: Redis, keys: Iterable[str], kind: str) -> int:
    """Move aside those of `keys` that exist and are not of Redis type `kind`; how many."""
    moved = 0
    for key in keys:
        actual = _type(connection, key)
        if actual not in ("none", kind):
            record(connection, key, b"", f"{key} holds a {actual}, not a {kind}", _rename_aside(connection, key))
            moved += 1
    return moved


def unreadable_job(connection: Redis, job_id: bytes) -> str | None:
    """Why the job named `job_id` cannot be read by RQ, or None."""
    if not JOB_ID.fullmatch(job_id):
        return "not an RQ job id"
    actual = _type(connection, JOB_KEY_PREFIX + job_id.decode())
    if actual not in ("none", "hash"):
        return f"its job key holds a {actual}, not a hash"
    return None


def readable(connection: Redis, queue_key: bytes | str, job_id: bytes | str) -> bool:
    """Whether a job id just popped from `queue_key` can be read; if not, it is moved aside
    (also out of the queue's intermediate list, where RQ's LMOVE puts it)."""
    raw = job_id.encode("utf-8", "surrogateescape") if isinstance(job_id, str) else job_id
    reason = unreadable_job(connection, raw)
    if reason is None:
        return True
    key = queue_key.decode("latin-1") if isinstance(queue_key, bytes) else queue_key
    set_aside(connection, key, raw, reason)
    return False


def set_aside(connection: Redis, queue_key: str, job_id: bytes, reason: str) -> None:
    """Take `job_id` out of the queue's intermediate list and its job key out of RQ's way, and
    record it as taken from `queue_key`."""
    connection.lrem(IntermediateQueue.get_intermediate_queue_key(queue_key), 0, job_id)
    moved_to = None
    if JOB_ID.fullmatch(job_id):
        job_key = JOB_KEY_PREFIX + job_id.decode()
        if _type(connection, job_key) not in ("none", "hash"):
            moved_to = _rename_aside(connection, job_key)
    record(connection, queue_key, job_id, reason, moved_to)


def sweep(queue: Queue) -> int:
    """Move aside every unreadable entry of `queue`'s lists and registries; how many."""
    connection = queue.connection
    lists = [queue.key, queue.intermediate_queue_key]
    registries = [
        getattr(queue, name).key for name in dir(type(queue)) if name.endswith("_job_registry")
    ]
    workers = WORKERS_BY_QUEUE_KEY % queue.name
    moved = set_aside_wrong_types(connection, lists, "list")
    moved += set_aside_wrong_types(connection, registries, "zset")
    moved += set_aside_wrong_types(connection, [workers], "set")
    for raw in connection.smembers(workers):
        if not _is_utf8(raw):
            connection.srem(workers, raw)
            record(connection, workers, raw, "not a worker key")
            moved += 1
    for key in lists:
        for raw in set(connection.lrange(key, 0, -1)):
            reason = unreadable_job(connection, raw)
            if reason:
                connection.lrem(key, 0, raw)
                set_aside(connection, key, raw, reason)
                moved += 1
    for key in registries:
        for raw in connection.zrange(key, 0, -1):
            match = REGISTRY_MEMBER.fullmatch(raw)
            reason = unreadable_job(connection, match.group(1)) if match else "not an RQ job id"
            if reason:
                connection.zrem(key, raw)
                set_aside(connection, key, match.group(1) if match else raw, reason)
                moved += 1
    return moved


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def records(connection: Redis, limit: int | None = None) -> list[dict[str, Any]]:
    """The quarantine's records, newest first."""
    raw = connection.lrange(KEY, 0, -1 if limit is None else limit - 1)
    return [json.loads(item) for item in raw]


def purge(connection: Redis) -> int:
    """Delete every record and the keys moved aside with them; how many records."""
    found = records(connection)
    moved = [item["moved_to"] for item in found if item.get("moved_to")]
    with connection.pipeline() as pipeline:
        if moved:
            pipeline.delete(*moved)
        pipeline.delete(KEY)
        pipeline.execute()
    return len(found)
