"""A hostile page cannot make a worker store a huge result: real pages, a real worker, and the
bytes Redis actually holds."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from rq.results import Result

from tests.conftest import BIN, with_dns
from thugrq import config, job, submit, truncation
from thugrq.options import Options

#: The bound the worker is started with: below the default, so the flag is what holds.
BOUND = 600_000


#: What a job's hash may take beside its result: URL, options, meta, RQ's fields.
JOB_ALLOWANCE = 64 * 1024
#: Redis's allocator (jemalloc) serves a large value from size classes four to a doubling: a
#: value of up to BOUND bytes may occupy up to a quarter more.
ALLOCATED_BOUND = BOUND * 5 // 4


@dataclass(frozen=True)
class Stored:
    raw: bytes  # the result as Redis holds it
    document: dict[str, Any]
    footprint: int  # bytes of Redis memory the job's keys take (MEMORY USAGE)


@pytest.fixture(scope="module")
def stored(redis_server, site, tmp_path_factory) -> Iterator[dict[str, Stored]]:
    """Each page analysed once, by one burst worker that allows 127.0.0.1 only (so the flood's
    requests to 127.0.0.3 are refused) and stores at most BOUND bytes a result."""
    connection = redis.Redis.from_url(redis_server)
    connection.flushall()
    ids = {
        path: submit.enqueue(connection, [site.url(path)], options=Options(timeout=timeout)).jobs[0].id
        for path, timeout in (("/flood", 5), ("/snippets", 60), ("/huge", 60))
    }
    unset = ("REDIS_URL", config.MAX_RESULT_BYTES_VARIABLE)
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(
        THUGRQ_REDIS_URL=redis_server, THUGRQ_HOME=str(tmp_path_factory.mktemp("home")),
        THUGRQ_ALLOW_PRIVATE_TARGETS="127.0.0.1/32",
    )
    worker = subprocess.run(
        [str(BIN / "thugrq-worker"), "--burst", "--queue", "generic", "--max-result-bytes", str(BOUND)],
        env=with_dns(environment), capture_output=True, text=True, timeout=300,
    )
    assert worker.returncode == 0, worker.stderr
    yield {
        path: Stored(
            raw=connection.xrange(Result.get_key(job_id))[-1][1][b"return_value"],
            document=job.result(connection, job_id)[1],
            footprint=sum(
                connection.memory_usage(key, samples=0) or 0
                for key in (f"rq:job:{job_id}", Result.get_key(job_id))
            ),
        )
        for path, job_id in ids.items()
    }


@pytest.mark.parametrize("path", ["/flood", "/snippets", "/huge"])
def test_stored_result_is_within_the_bound(stored, path):
    assert len(stored[path].raw) <= BOUND
    assert stored[path].document["truncated"]


@pytest.mark.parametrize("path", ["/flood", "/snippets", "/huge"])
def test_a_hostile_jobs_whole_footprint_in_redis_memory_stays_within_the_bound(stored, path):
    """Measured as Redis counts it (MEMORY USAGE of the job's hash and result stream), not as
    thugrq thinks it wrote it; these pages download no sample (thugrq.samples bounds those)."""
    assert not stored[path].document["summary"]["samples"]
    assert stored[path].footprint <= ALLOCATED_BOUND + JOB_ALLOWANCE, stored[path].footprint


def test_flood_keeps_the_beginning_of_each_summary_list_and_counts_the_rest(stored):
    document = stored["/flood"].document
    summary, truncated = document["summary"], document["truncated"]
    assert document["status"] == "timeout" and "5 s" in document["error"]
    assert summary["exploits"][0]["module"] == "WScript.Shell ActiveX"
    assert len(summary["exploits"]) == truncation.SUMMARY_ITEMS
    assert truncated["summary.exploits"] == {"entries": summary["counts"]["exploits"] - truncation.SUMMARY_ITEMS}
    assert summary["refused"][0]["address"] == "127.0.0.3"
    assert truncated["summary.refused"]["entries"] > 0  # counted as they came, not kept


def test_snippets_are_cut_from_the_log_first(stored):
    document = stored["/snippets"].document
    truncated = document["truncated"]
    assert document["status"] == "completed" and document["error"] is None
    assert document["summary"]["counts"]["code_snippets"] >= 1500
    assert truncated["log.code"]["bytes"] > 50_000_000 and truncated["log.code"]["entries"] > 1000
    assert document["log"]["code"]  # its beginning stays
    assert not [path for path in truncated if path.startswith("summary.")]
