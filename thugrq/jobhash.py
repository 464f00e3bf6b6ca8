"""What a worker accepts of a job hash read from Redis, field by field.

RQ trusts every field of a job hash: a date that does not parse, a dependency list that is a
number, a webhook URL, a zip bomb in `data`, and RQ raises in the worker process itself (which
then quits: one hostile hash would stop the fleet) or acts on them. thugrq jobs carry a known
set of fields, so each field is checked against what thugrq and RQ themselves write: good fields
pass, malformed or unwanted ones are dropped and named as the reason to refuse the job, and
unknown ones are dropped.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable

from rq.job import JobStatus

from thugrq.defaults import (
    MAX_JOB_DATA,
    MAX_JOB_TEXT,
    MAX_JOB_TIMEOUT,
    MAX_RESULT_TTL,
    MAX_RETRIES,
    MIN_RESULT_TTL,
)

DATE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z?$")
NAME = re.compile(rb"^[A-Za-z0-9_.:@-]{1,200}$")
STATUSES = frozenset(status.value.encode() for status in JobStatus)


def _matches(pattern: re.Pattern[bytes]) -> Callable[[bytes], bool]:
    return lambda value: bool(pattern.match(value))


def _integer(low: int, high: int) -> Callable[[bytes], bool]:
    def check(value: bytes) -> bool:
        return bool(re.match(rb"^-?\d{1,10}$", value)) and low <= int(value) <= high

    return check


def _text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(value) <= MAX_JOB_TEXT


def _intervals(value: bytes) -> bool:
    try:
        intervals = json.loads(value)
    except ValueError:
        return False
    return (
        isinstance(intervals, list)
        and len(intervals) <= 10
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 86400 for i in intervals)
    )


def _json_object(value: bytes) -> bool:
    try:
        return len(value) <= MAX_JOB_DATA and isinstance(json.loads(value), dict)
    except ValueError:
        return False


def _inflate(data: bytes) -> bytes | None:
    """`data` decompressed, or None when it would exceed MAX_JOB_DATA; zlib.error if not zlib."""
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, MAX_JOB_DATA)
    return None if inflater.unconsumed_tail else text


def _compressed_text(value: bytes) -> bool:
    try:
        text = _inflate(value)
        if text is None:
            return False
        text.decode("utf-8")
    except (zlib.error, UnicodeDecodeError):
        return False
    return True


def _empty(value: bytes) -> bool:
    return value == b""


#: Fields a thugrq job may carry, with the check its value must pass.
FIELDS: dict[bytes, Callable[[bytes], bool]] = {
    b"data": lambda value: True,  # bounded separately: see inflate()
    b"status": lambda value: value in STATUSES,
    b"origin": _matches(NAME),
    b"description": _text,
    b"worker_name": _matches(NAME),
    b"group_id": _matches(NAME),
    b"created_at": _matches(DATE),
    b"enqueued_at": _matches(DATE),
    b"started_at": _matches(DATE),
    b"ended_at": _matches(DATE),
    b"last_heartbeat": _matches(DATE),
    # A job may not run forever, nor make its outcome vanish (a TTL of 0 deletes it at once).
    b"timeout": _integer(1, MAX_JOB_TIMEOUT),
    b"result_ttl": _integer(MIN_RESULT_TTL, MAX_RESULT_TTL),
    b"failure_ttl": _integer(MIN_RESULT_TTL, MAX_RESULT_TTL),
    b"ttl": _integer(MIN_RESULT_TTL, MAX_RESULT_TTL),
    b"retries_left": _integer(0, MAX_RETRIES),
    b"number_of_retries": _integer(0, 10**6),
    b"retry_intervals": _intervals,
    b"enqueue_at_front": _integer(0, 1),
    b"enqueue_at_front_on_retry": _integer(0, 1),
    b"meta": _json_object,
    b"exc_info": _compressed_text,
    b"thugrq_refusal": _text,
    # RQ writes these empty for jobs without callbacks; anything else is refused.
    b"success_callback_name": _empty,
    b"failure_callback_name": _empty,
    b"stopped_callback_name": _empty,
}

#: Fields RQ parses whenever present, even empty: an empty one is dropped.
PARSED_WHEN_PRESENT = frozenset({b"enqueue_at_front", b"enqueue_at_front_on_retry"})

#: Fields a job may not carry at all: what a submitter must not choose.
REFUSED = {
    b"webhooks": "a webhook",
    b"dependency_ids": "dependencies",
    b"dependency_id": "dependencies",
    b"allow_dependency_failures": "dependencies",
    b"repeats_left": "repetition",
    b"repeat_intervals": "repetition",
    b"success_callback_timeout": "a callback",
    b"failure_callback_timeout": "a callback",
    b"stopped_callback_timeout": "a callback",
    b"rate_limit_key": "a rate limit",
    b"rate_limit_concurrency": "a rate limit",
}


def sanitize(raw: dict[bytes, bytes]) -> tuple[dict[bytes, bytes], str | None]:
    """The fields of `raw` a worker may read, and why the job must be refused (or None)."""
    clean: dict[bytes, bytes] = {}
    refusals: list[str] = []
    for name, value in raw.items():
        if name in REFUSED:
            if value not in (b"", b"0", b"[]"):
                refusals.append(f"job names {REFUSED[name]}")
            continue
        check = FIELDS.get(name)
        if check is None:
            continue
        if value == b"" and name in PARSED_WHEN_PRESENT:
            continue
        if value == b"" or check(value):  # RQ writes unset fields as empty strings
            clean[name] = value
        elif check is _empty:
            refusals.append("job names a callback")
        else:
            refusals.append(f"job field {name.decode()!r} is malformed")
    problem = data_refusal(raw.get(b"data"))
    if problem:
        refusals.append(problem)
        clean[b"data"] = STAND_IN
    refusal = "refused: " + "; ".join(dict.fromkeys(refusals)) if refusals else None
    return clean, refusal


#: Readable job data put in place of data that cannot be read.
STAND_IN = zlib.compress(b'["refused", null, [], {}]')


def data_refusal(data: bytes | None) -> str | None:
    """Why job data (zlib-compressed JSON, or plain JSON as RQ also accepts) cannot be read as
    a job call, or None. RQ would only find out inside the work horse, as a bare
    DeserializationError that could be retried."""
    if data is None:
        return "job has no data"
    try:
        text = _inflate(data)
    except zlib.error:
        text = data if len(data) <= MAX_JOB_DATA else None
    if text is None:
        return f"job data is larger than {MAX_JOB_DATA} bytes"
    try:
        call = json.loads(text)
    except ValueError:
        return "job data is not JSON (thugrq jobs are never pickled)"
    if not (isinstance(call, list) and len(call) == 4):
        return "job data is not a job call [function, instance, args, kwargs]"
    return None
