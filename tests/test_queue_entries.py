"""Queue entries nobody can read are moved aside, listed by `thugrq quarantine`, and never stop a
worker; a worker that does stop on an unexpected error exits non-zero."""

from __future__ import annotations

import json
import pickle
import zlib

import pytest


@pytest.fixture
def queued_behind(connection, thugrq, site):
    """Push `entry` onto a queue, then a well-formed job behind it; returns that job's id."""

    def push(entry: bytes, queue: str = "generic") -> str:
        connection.sadd("rq:queues", f"rq:queue:{queue}")
        connection.rpush(f"rq:queue:{queue}", entry)
        return thugrq("enqueue", site.url("/chain/final"), check=True).stdout.strip()

    return push


def finished(thugrq, job_id: str) -> bool:
    return "finished" in thugrq("status", job_id).stdout


def quarantined(thugrq) -> list[dict]:
    listed = thugrq("quarantine", "--json", check=True)
    return [json.loads(line) for line in listed.stdout.splitlines()]


@pytest.mark.parametrize("queues", [["generic"], ["IT", "generic"]], ids=["one-queue", "two-queues"])
def test_undecodable_id_is_moved_aside_and_the_job_behind_it_runs(
    queued_behind, burst_worker, thugrq, queues
):
    # One queue: RQ pops with LMOVE into its intermediate list; several: with BLPOP.
    job_id = queued_behind(b"\xff\xfe-bad")
    worker = burst_worker(*(arg for queue in queues for arg in ("--queue", queue)))
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert finished(thugrq, job_id)
    (record,) = quarantined(thugrq)
    assert record["entry"] == "\\xff\\xfe-bad"
    assert record["key"] == "rq:queue:generic" and record["reason"] == "not an RQ job id"


def test_job_key_of_the_wrong_type_is_moved_aside(connection, queued_behind, burst_worker, thugrq):
    connection.set("rq:job:X", "x")
    job_id = queued_behind(b"X")
    assert burst_worker("--queue", "generic").returncode == 0
    assert finished(thugrq, job_id)
    (record,) = quarantined(thugrq)
    assert "holds a string, not a hash" in record["reason"]
    assert not connection.exists("rq:job:X")
    assert connection.get(record["moved_to"]) == b"x"


def test_queue_key_of_the_wrong_type_is_moved_aside(connection, burst_worker, thugrq, site):
    connection.set("rq:queue:IT", "not a list")
    job_id = thugrq("enqueue", site.url("/chain/final"), check=True).stdout.strip()
    assert burst_worker("--queue", "IT", "--queue", "generic").returncode == 0
    assert finished(thugrq, job_id)
    assert "rq:queue:IT holds a string, not a list" in quarantined(thugrq)[0]["reason"]


def test_ids_holding_markup_never_reach_the_failed_registry(connection, queued_behind, burst_worker, thugrq):
    # rq-dashboard's Failed list would answer 500 for as long as the id stayed there.
    connection.hset("rq:job:<img src=x>", mapping={"status": "queued", "data": b"x"})
    job_id = queued_behind(b"<img src=x>")
    burst_worker("--queue", "generic")
    assert finished(thugrq, job_id)
    assert connection.zrange("rq:failed:generic", 0, -1) == []
    assert quarantined(thugrq)[0]["entry"] == "<img src=x>"


def test_unreadable_entries_in_lists_and_registries_do_not_stop_cleaning(
    connection, queued_behind, burst_worker, thugrq
):
    # Left by a crashed worker or written by hand: RQ's cleaning decodes them all at start-up.
    connection.rpush("rq:queue:generic:intermediate", b"\xff-stuck")
    connection.zadd("rq:wip:generic", {b"\xfe-started": 1})
    connection.sadd("rq:workers:generic", b"\xfd-worker")
    job_id = queued_behind(b"\xff\xfe-bad")
    worker = burst_worker("--queue", "generic")
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert finished(thugrq, job_id)
    assert not connection.exists("rq:clean_registries:generic")  # the cleaning lock is released
    entries = {record["entry"] for record in quarantined(thugrq)}
    assert {"\\xff-stuck", "\\xfe-started", "\\xfd-worker", "\\xff\\xfe-bad"} <= entries


@pytest.mark.parametrize(
    "data, reason",
    [
        (zlib.compress(pickle.dumps(("thugrq.analysis.analyze", None, ["http://x.test/", {}], {}))), "not JSON"),
        (b"plain text", "not JSON"),
        (zlib.compress(b'{"a": 1}'), "not a job call"),
        (None, "job has no data"),
    ],
    ids=["pickle", "text", "json-object", "missing"],
)
def test_job_data_that_is_not_a_json_call_ends_refused_and_is_not_retried(
    connection, burst_worker, thugrq, data, reason
):
    mapping = {"status": "queued", "origin": "generic", "retries_left": "2"}
    connection.hset("rq:job:unreadable", mapping={**mapping, **({"data": data} if data else {})})
    connection.rpush("rq:queue:generic", "unreadable")
    burst_worker("--queue", "generic")
    status = thugrq("status", "unreadable", "--json", check=True)
    (shown,) = [json.loads(line) for line in status.stdout.splitlines()]
    assert shown["status"] == "failed"
    assert "refused: " in shown["reason"] and reason in shown["reason"]
    assert connection.zrange("rq:scheduled:generic", 0, -1) == []  # no retry scheduled


def test_quarantine_purge_deletes_records_and_moved_keys(connection, queued_behind, burst_worker, thugrq):
    connection.set("rq:job:X", "x")
    queued_behind(b"X")
    burst_worker("--queue", "generic")
    moved = quarantined(thugrq)[0]["moved_to"]
    assert "purged 1 record(s)" in thugrq("quarantine", "--purge", check=True).stderr
    assert quarantined(thugrq) == [] and not connection.exists(moved)


def test_worker_that_stops_on_an_unexpected_error_exits_non_zero(connection, redis_url, burst_worker, env):
    # A worker whose Redis user may not pop from queues: RQ logs the error and returns as if
    # done; a supervisor must see a failure to restart it.
    connection.execute_command(
        "ACL", "SETUSER", "nopop", "on", ">secret", "~*", "&*", "+@all",
        "-lpop", "-blpop", "-lmove", "-blmove",
    )
    try:
        url = redis_url.replace("redis://", "redis://nopop:secret@", 1)
        worker = burst_worker("--queue", "generic", env={**env, "THUGRQ_REDIS_URL": url})
    finally:
        connection.execute_command("ACL", "DELUSER", "nopop")
    assert worker.returncode != 0
    assert "stopped on an unexpected error" in worker.stderr and "NOPERM" in worker.stderr.upper()
