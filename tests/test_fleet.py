"""Workers find their country through DNS, serve it before generic, and show up in the fleet."""

from __future__ import annotations

import dataclasses
import json

import pytest
from rq import Worker
from rq.serializers import JSONSerializer

from tests.conftest import wait_for
from thugrq import fleet
from thugrq.job import ThugrqJob
from thugrq.location import Keeper
from thugrq.worker import ThugrqWorker

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running


@pytest.fixture
def italy(cymru):
    cymru.add("myip.opendns.com", "A", "192.0.2.10")
    cymru.add_txt("10.2.0.192.origin.asn.cymru.com", "64500 | 192.0.2.0/24 | IT | ripencc | 2001-01-01")
    return cymru


def workers_json(thugrq) -> list[dict]:
    return [json.loads(line) for line in thugrq("workers", "--json").stdout.splitlines()]


def test_geo_json_prints_address_country_and_asn(italy, thugrq):
    located = thugrq("geo", "--json")
    assert located.returncode == 0, located.stderr
    document = json.loads(located.stdout)
    assert document["address"] == "192.0.2.10"
    assert document["country"] == "IT" and document["asn"] == 64500
    assert document["queues"] == ["IT", "generic"]


def test_geo_failure_names_the_step(cymru, thugrq):
    cymru.mode = "silent"
    failed = thugrq("geo")
    assert failed.returncode == 1
    assert "public address" in failed.stderr


def test_located_worker_is_listed_with_country_and_queues(italy, background_worker, thugrq, connection):
    background_worker()
    (record,) = wait_for(lambda: workers_json(thugrq))
    assert record["country"] == "IT" and record["asn"] == 64500
    assert record["queues"] == ["IT", "generic"]
    assert record["thug"] == "6.22"
    assert record["name"].startswith("IT.")
    (rq_worker,) = Worker.all(connection=connection)
    assert rq_worker.queue_names() == ["IT", "generic"]


def test_a_worker_whose_record_lapsed_while_cut_off_registers_it_again_whole(italy, connection):
    worker = ThugrqWorker(["IT", "generic"], connection=connection, keeper=Keeper.given("IT"))
    worker.register_birth()
    (record,) = fleet.workers(connection)
    connection.delete(fleet.RECORD_PREFIX + worker.name)  # as its TTL would, during a partition
    worker.heartbeat()  # the first one that reaches Redis again
    (again,) = fleet.workers(connection)
    assert again == dataclasses.replace(record, last_seen=again.last_seen)
    worker.register_death()


def test_stopped_worker_leaves_the_fleet(italy, background_worker, thugrq):
    process = background_worker()
    wait_for(lambda: workers_json(thugrq))
    process.terminate()
    process.wait(timeout=60)
    assert workers_json(thugrq) == []


def test_country_jobs_are_taken_before_waiting_generic_ones(italy, thugrq, burst_worker, site, connection):
    generic = thugrq("enqueue", site.url("/chain/final"), check=True).stdout.strip()
    italian = thugrq("enqueue", "--country", "it", site.url("/chain/final"), check=True).stdout.strip()
    burst_worker()
    started = {
        job_id: ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer).started_at
        for job_id in (generic, italian)
    }
    assert started[italian] < started[generic]


def test_worker_in_another_country_leaves_country_jobs_alone(thugrq, burst_worker, site):
    italian = thugrq("enqueue", "--country", "Italy", site.url("/chain/final"), check=True).stdout.strip()
    ran = burst_worker("--country", "US")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(thugrq("status", italian, "--json").stdout)["status"] == "queued"


def test_workers_in_two_countries_each_take_their_own(cymru, background_worker, thugrq, site):
    jobs = {
        country: thugrq("enqueue", "--country", country, site.url("/chain/final"), check=True).stdout.strip()
        for country in ("IT", "US")
    }
    background_worker("--country", "IT")
    background_worker("--country", "US")
    for country, job_id in jobs.items():
        wait_for(lambda: json.loads(thugrq("status", job_id, "--json").stdout)["status"] == "finished")
        document = json.loads(thugrq("result", job_id, "--json").stdout)
        assert document["worker"]["country"] == country
        assert document["worker"]["name"].startswith(f"{country}.")
    assert sorted(r["country"] for r in workers_json(thugrq)) == ["IT", "US"]


def test_silent_dns_makes_the_worker_warn_and_serve_generic_only(cymru, burst_worker, connection):
    cymru.mode = "silent"
    ran = burst_worker()
    assert ran.returncode == 0
    assert "cannot find this host's country" in ran.stderr
    assert "queues generic" in ran.stderr


def test_require_country_exits_non_zero_naming_the_failed_step(cymru, burst_worker):
    cymru.mode = "silent"
    ran = burst_worker("--require-country")
    assert ran.returncode != 0
    assert "public address" in ran.stderr


def test_countries_marks_waiting_jobs_without_workers(thugrq, background_worker):
    thugrq("enqueue", "--country", "BR", "http://x.test/", check=True)
    background_worker("--country", "FR")
    wait_for(lambda: workers_json(thugrq))
    rows = {row["country"]: row for row in map(json.loads, thugrq("countries", "--json").stdout.splitlines())}
    assert rows["BR"] == {"country": "BR", "workers": 0, "waiting": 1, "starving": True}
    assert rows["FR"] == {"country": "FR", "workers": 1, "waiting": 0, "starving": False}
    assert "STARVING" in thugrq("countries").stdout


def test_rebuilt_workers_read_a_busy_workers_job_with_json(busy_worker, connection):
    from thugrq.worker import ThugrqWorker

    (worker,) = [w for w in ThugrqWorker.all(connection=connection) if w.name == busy_worker.name]
    assert worker.get_current_job().id == busy_worker.job_id


def test_a_worker_serves_its_country_first_then_generic_or_generic_alone_without_one():
    assert fleet.queues_for("IT") == ["IT", "generic"]
    assert fleet.queues_for(None) == ["generic"]
