"""A worker's location stays true while it runs (thugrq.location), and every result says where
it was analysed from: real workers against the loopback DNS stand-in, whose answers the tests
change under them."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import stop_all, wait_for
from tests.test_fleet import workers_json
from thugrq import fleet, geo
from thugrq.exceptions import GeoError
from thugrq.job import ThugrqJob
from thugrq.location import Keeper
from thugrq.worker import ThugrqWorker

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running

IT_HOST, US_HOST = "192.0.2.10", "198.51.100.7"
#: Rechecks every 2 s; a check against a silent stand-in takes 1.5 s (3 questions, 0.5 s each).
RECHECK = "2"


def move_to_us(cymru) -> None:
    """Make the stand-in place this host in the US from the next question on (one assignment,
    so that no question in between finds nothing)."""
    cymru.place(US_HOST, "US", asn=64501, as_name="EXAMPLE-US Example America")
    cymru.records[("myip.opendns.com", "A")] = [US_HOST]


def enqueue(thugrq, site, *args: str) -> dict:
    row = thugrq("enqueue", site.url("/chain/final"), *args, "--json", check=True).stdout
    return json.loads(row.splitlines()[0])


def status(thugrq, job_id: str) -> str:
    return json.loads(thugrq("status", job_id, "--json").stdout)["status"]


def finished(thugrq, job_id: str) -> dict:
    """The result document of a job, once it has finished."""
    wait_for(lambda: status(thugrq, job_id) == "finished")
    return json.loads(thugrq("result", job_id, "--json").stdout)


def only_worker(thugrq) -> dict:
    (record,) = wait_for(lambda: workers_json(thugrq))
    return record


def stopped_log(process: subprocess.Popen) -> str:
    stop_all([process])
    return process.stderr.read()


def located_worker(cymru, background_worker, thugrq) -> subprocess.Popen:
    """A worker that found itself in Italy and re-checks every RECHECK seconds."""
    cymru.place(IT_HOST, "IT", asn=64500, as_name="EXAMPLE-IT Example Italia")
    process = background_worker("--recheck", RECHECK)
    assert only_worker(thugrq)["queues"] == ["IT", "generic"]
    return process


def rq_queues(connection) -> list[str]:
    (worker,) = ThugrqWorker.all(connection=connection)
    return worker.queue_names()


def test_a_worker_that_moves_serves_its_new_country_and_leaves_the_old_ones_jobs(
    cymru, background_worker, thugrq, site, connection
):
    process = located_worker(cymru, background_worker, thugrq)
    move_to_us(cymru)
    wait_for(lambda: only_worker(thugrq)["queues"] == ["US", "generic"], timeout=10)
    record = only_worker(thugrq)
    assert (record["country"], record["asn"]) == ("US", 64501)
    assert rq_queues(connection) == ["US", "generic"]
    worker_key = ThugrqWorker.all(connection=connection)[0].key.encode()
    assert worker_key not in connection.smembers("rq:workers:IT")
    assert worker_key in connection.smembers("rq:workers:US")
    italian = enqueue(thugrq, site, "--country", "IT")["id"]
    american = enqueue(thugrq, site, "--country", "US")["id"]
    where = finished(thugrq, american)["worker"]["location"]
    assert (where["address"], where["country"], where["asn"]) == (US_HOST, "US", 64501)
    assert status(thugrq, italian) == "queued"
    rows = {
        row["country"]: row
        for row in map(json.loads, thugrq("countries", "--json").stdout.splitlines())
    }
    assert rows["IT"]["starving"] and rows["US"]["workers"] == 1
    log = stopped_log(process)
    assert f"this host moved: it is now {US_HOST} in US" in log
    assert "now serves US, generic (was IT, generic)" in log


def test_a_failed_lookup_leaves_generic_only_until_one_succeeds(
    cymru, background_worker, thugrq, site, connection
):
    process = located_worker(cymru, background_worker, thugrq)
    cymru.mode = "silent"
    wait_for(lambda: only_worker(thugrq)["queues"] == ["generic"], timeout=10)
    assert only_worker(thugrq)["country"] is None and rq_queues(connection) == ["generic"]
    italian = enqueue(thugrq, site, "--country", "IT")["id"]
    generic = enqueue(thugrq, site)["id"]
    where = finished(thugrq, generic)["worker"]["location"]
    assert where["country"] is None and where["address"] is None and where["checked"]
    assert status(thugrq, italian) == "queued"
    cymru.mode = "answer"
    wait_for(lambda: only_worker(thugrq)["queues"] == ["IT", "generic"], timeout=10)
    assert finished(thugrq, italian)["worker"]["location"]["country"] == "IT"
    log = stopped_log(process)
    assert "location lookup failed" in log and f"location found again: this host is {IT_HOST}" in log


def test_a_dequeued_country_job_goes_back_untouched_when_the_worker_has_moved(
    cymru, thugrq, site, connection
):
    cymru.place(IT_HOST, "IT")
    now = [0.0]
    keeper = Keeper(geo.locate, 300, clock=lambda: now[0])
    keeper.check()
    worker = ThugrqWorker(fleet.queues_for(keeper.country), connection=connection, keeper=keeper)
    first, second = (enqueue(thugrq, site, "--country", "IT")["id"] for _ in range(2))
    untouched = connection.hgetall(ThugrqJob.key_for(first))
    job, queue = worker.dequeue_job_and_maintain_ttl(None)
    assert job.id == first
    move_to_us(cymru)
    now[0] += 300  # the last check is now as old as the re-check interval
    worker.execute_job(job, queue)
    assert [entry.decode() for entry in connection.lrange(queue.key, 0, -1)] == [first, second]
    assert connection.hgetall(ThugrqJob.key_for(first)) == untouched
    assert queue.failed_job_registry.count == 0 and queue.started_job_registry.count == 0
    worker.heartbeat()  # between jobs: it now serves where it stands
    assert worker.queue_names() == ["US", "generic"]
    assert connection.hget(worker.key, "queues") == b"US,generic"


def test_a_job_records_where_it_was_analysed_from_and_result_shows_it(
    cymru, background_worker, thugrq, site
):
    located_worker(cymru, background_worker, thugrq)
    row = enqueue(thugrq, site, "--country", "IT")
    where = finished(thugrq, row["id"])["worker"]["location"]
    assert {key: where[key] for key in ("address", "country", "asn", "as_name")} == {
        "address": IT_HOST, "country": "IT", "asn": 64500, "as_name": "EXAMPLE-IT Example Italia",
    }
    shown = thugrq("result", row["id"]).stdout
    assert (
        f"From         {IT_HOST} in IT, AS64500 EXAMPLE-IT Example Italia, checked {where['checked']}"
        in shown.splitlines()
    )
    report = json.loads(thugrq("group", row["group"], "--json").stdout)
    assert report["misplaced"] == [] and report["jobs"][0]["analysed_from"] == "IT"
    assert "MISPLACED" not in thugrq("group", row["group"]).stdout


def test_group_flags_a_country_job_analysed_from_another_country(thugrq, burst_worker, site):
    group = enqueue(thugrq, site, "-c", "IT", "--generic")["group"]
    assert burst_worker("--country", "US", "--queue", "IT", "--queue", "generic").returncode == 0
    report = json.loads(thugrq("group", group, "--json").stdout)
    (italian,) = [job for job in report["jobs"] if job["queue"] == "IT"]
    assert report["misplaced"] == [italian["id"]] and italian["analysed_from"] == "US"
    assert f"MISPLACED {italian['id']}: queue IT, analysed from US" in thugrq("group", group).stdout
    assert "From         not verified" in thugrq("result", italian["id"]).stdout


def test_the_keeper_rechecks_only_when_due_and_only_a_located_worker():
    answers = [geo.Location(IT_HOST, "IT", 64500, "192.0.2.0/24", "ripencc", None)]
    now = [0.0]

    def lookup() -> geo.Location:
        if not answers:
            raise GeoError("public address", "no provider answered")
        return answers.pop(0)

    keeper = Keeper(lookup, 10, clock=lambda: now[0])
    keeper.check()
    assert (keeper.country, keeper.queues(), keeper.due()) == ("IT", ["IT", "generic"], False)
    assert keeper.may_start("IT") and keeper.wait_limit(15) == 10
    now[0] = 10
    assert keeper.due() and not keeper.may_start("IT")  # re-checked first: the lookup fails
    assert keeper.queues() == ["generic"] and keeper.whereabouts.country is None
    assert keeper.may_start("generic")
    given = Keeper.given("FR")
    assert not given.due() and given.may_start("DE") and given.queues() is None
    assert given.identity("w").location is None and given.wait_limit(15) == 15
    with pytest.raises(GeoError):
        Keeper(lookup, 10).check(required=True)
