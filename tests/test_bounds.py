"""The library refuses every job a worker would refuse, before anything is written.

A worker checks each field of a job hash (thugrq.jobhash); submit.enqueue checks the same bounds
(thugrq.defaults) first, so that a script cannot enqueue jobs that every worker then refuses.
"""

from __future__ import annotations

import json
import re
import zlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from thugrq import defaults, jobhash, submit
from thugrq.config import GENERIC_QUEUE
from thugrq.exceptions import InvalidInput
from thugrq.job import ThugrqJob
from thugrq.options import MAX_URL_LENGTH, Options
from thugrq.personalities import DEFAULT_PERSONALITY, PERSONALITIES

URL = "http://a.test/"
#: The most bytes a character takes in UTF-8 (the description) and in RQ's JSON (the data).
WIDE = "\U0001f600"


def workers_accept(connection) -> list[dict[bytes, bytes]]:
    """Every job hash in Redis, each passed as a worker checks it."""
    keys = connection.keys(ThugrqJob.redis_job_namespace_prefix + "*")
    written = [connection.hgetall(key) for key in keys]
    for raw in written:
        assert jobhash.sanitize(raw)[1] is None
    return written


def accepted(connection, urls=(URL,), **kwargs) -> list[dict[bytes, bytes]]:
    """Enqueue; the jobs written, each passed as a worker checks it."""
    submission = submit.enqueue(connection, list(urls), **kwargs)
    written = workers_accept(connection)
    assert len(written) == len(submission.jobs)
    return written


def refused(connection, match: str, urls=(URL,), **kwargs) -> None:
    """Enqueue is refused, saying `match`, and nothing at all is written."""
    with pytest.raises(InvalidInput, match=match):
        submit.enqueue(connection, list(urls), **kwargs)
    assert connection.dbsize() == 0


ANALYSIS_TIMEOUT = Options().timeout
#: Per parameter: the values at its bounds, and those one past them.
BOUNDS = {
    "result_ttl": ((defaults.MIN_RESULT_TTL, defaults.MAX_RESULT_TTL),
                   (defaults.MIN_RESULT_TTL - 1, defaults.MAX_RESULT_TTL + 1)),
    "job_timeout": ((ANALYSIS_TIMEOUT + 1, defaults.MAX_JOB_TIMEOUT),
                    (ANALYSIS_TIMEOUT, defaults.MAX_JOB_TIMEOUT + 1)),
    "retries": ((0, defaults.MAX_RETRIES), (-1, defaults.MAX_RETRIES + 1)),
    "dedupe": ((0, defaults.MAX_DEDUPE), (-1, defaults.MAX_DEDUPE + 1)),
}


@pytest.mark.parametrize(
    "name, value", [(name, value) for name, (inside, _) in BOUNDS.items() for value in inside]
)
def test_a_value_at_its_bound_is_accepted(connection, name, value):
    accepted(connection, **{name: value})


@pytest.mark.parametrize(
    "name, value",
    [(name, value) for name, (_, outside) in BOUNDS.items() for value in outside]
    + [("retries", True), ("dedupe", 1.5), ("result_ttl", "3600"), ("at_front", "yes")],
)
def test_a_value_past_its_bound_is_refused_and_nothing_written(connection, name, value):
    # The job timeout's lower bound is the analysis timeout: "invalid job timeout 300: ...".
    named = name.replace("_", "[_ ]")
    refused(connection, rf"invalid {named} {re.escape(repr(value))}:", **{name: value})


def test_analysis_timeout_bound_holds_for_the_library_too(connection):
    accepted(connection, options=Options(timeout=defaults.MAX_ANALYSIS_TIMEOUT))
    with pytest.raises(InvalidInput, match="invalid timeout"):
        Options(timeout=defaults.MAX_ANALYSIS_TIMEOUT + 1)


def padded(prefix: str, size: int, encoded) -> str:
    """`prefix` followed by wide characters, then narrow ones, to make `size` encoded bytes."""
    start = len(encoded(prefix))
    wide, narrow = len(encoded(prefix + WIDE)) - start, len(encoded(prefix + "x")) - start
    room = size - start
    text = prefix + WIDE * (room // wide) + "x" * (room % wide // narrow)
    assert len(encoded(text)) == size and len(text) <= MAX_URL_LENGTH
    return text


def test_a_url_filling_the_description_to_its_bound_is_accepted_one_byte_more_refused(connection):
    around = f"thug  as {DEFAULT_PERSONALITY} from {GENERIC_QUEUE}".encode()
    size = defaults.MAX_JOB_TEXT - len(around)
    fitting = padded("http://a/", size, str.encode)
    (raw,) = accepted(connection, [fitting])
    assert len(raw[b"description"]) == defaults.MAX_JOB_TEXT
    connection.flushdb()
    refused(connection, "in the job's description", [fitting + "x"])
    refused(connection, "not valid Unicode", ["http://a/\ud800"])


def test_job_data_at_its_bound_is_accepted_one_byte_more_refused(connection):
    def data_size(raw):
        return len(zlib.decompress(raw[b"data"]))

    def as_json(text):
        return json.dumps(text).encode()

    url = "http://a/" + WIDE * 4000  # 48 KB of JSON, its description still within bounds
    short = "http://r/"
    base = data_size(accepted(connection, [url], options=Options(referer=short))[0])
    referer = padded(short, len(as_json(short)) + defaults.MAX_JOB_DATA - base, as_json)
    connection.flushdb()
    (raw,) = accepted(connection, [url], options=Options(referer=referer))
    assert data_size(raw) == defaults.MAX_JOB_DATA
    connection.flushdb()
    refused(connection, "bytes of job data", [url], options=Options(referer=referer + "x"))


def near(low: int, high: int) -> st.SearchStrategy[int]:
    """Whole numbers from `low` to `high`, or at and just past them."""
    return st.one_of(st.integers(low, high), st.sampled_from([low - 1, low, high, high + 1]))


texts = st.one_of(
    st.text(max_size=50),
    st.tuples(st.sampled_from(["x", "\u00e9", WIDE, "\"", "\ud800"]), st.integers(0, 4100)).map(
        lambda pair: pair[0] * pair[1]
    ),
)


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=texts,
    referer=st.none() | texts,
    timeout=near(1, defaults.MAX_ANALYSIS_TIMEOUT),
    result_ttl=near(defaults.MIN_RESULT_TTL, defaults.MAX_RESULT_TTL),
    job_timeout=st.none() | near(1, defaults.MAX_JOB_TIMEOUT),
    retries=near(0, defaults.MAX_RETRIES),
    dedupe=near(0, defaults.MAX_DEDUPE),
    at_front=st.booleans(),
    useragent=st.sampled_from(list(PERSONALITIES)),
    queue=st.sampled_from([GENERIC_QUEUE, "IT", "US"]),
)
def test_every_job_the_library_accepts_passes_the_worker_checks(
    connection, path, referer, timeout, result_ttl, job_timeout, retries, dedupe, at_front,
    useragent, queue,
):
    connection.flushdb()
    try:
        options = Options(
            timeout=timeout, useragent=useragent,
            referer=None if referer is None else "http://r/" + referer,
        )
        submit.enqueue(
            connection, ["http://a/" + path], [queue], options, result_ttl=result_ttl,
            job_timeout=job_timeout, retries=retries, dedupe=dedupe, at_front=at_front,
        )
    except InvalidInput as error:
        event(f"refused: {str(error).split()[1]}")
        assert connection.dbsize() == 0
        return
    event("accepted")
    assert workers_accept(connection)
