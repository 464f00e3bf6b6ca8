"""A submission is planned whole before anything is written: its size, the queues nobody
serves, every value checked; then `plan.enqueue` writes it in one transaction."""

from __future__ import annotations

import pytest

from thugrq import fleet
from thugrq.exceptions import InvalidInput
from thugrq.options import Options
from thugrq.submit import Plan, enqueue

URLS = ["http://a.test/", "http://b.test/", "http://c.test/"]


def record(name: str, queues: list[str]) -> fleet.WorkerRecord:
    """A live worker's fleet record, as a worker registers it."""
    return fleet.WorkerRecord(
        name=name, country=queues[0], asn=64500, as_name=None, thug="6.22",
        queues=queues, started=fleet.now(), last_seen=fleet.now(),
    )


def test_size_is_urls_x_queues_x_personalities_the_same_queue_or_personality_counted_once():
    plan = Plan(URLS, ["it", "Italy", "US"], useragents=["winxpie60", "win7ie90", "winxpie60"])
    assert (plan.urls, plan.queues) == (URLS, ["IT", "US"])
    assert [variant.useragent for variant in plan.variants] == ["winxpie60", "win7ie90"]
    assert plan.size == 3 * 2 * 2


def test_without_personalities_the_options_own_is_the_one_variant():
    plan = Plan(URLS[:1], options=Options(useragent="win7ie90"))
    assert plan.queues == ["generic"]
    assert [variant.useragent for variant in plan.variants] == ["win7ie90"]
    assert plan.size == 1


def test_enqueue_writes_exactly_the_plan_and_reports_progress_up_to_its_size(connection):
    plan = Plan(URLS, ["IT", "generic"], useragents=["winxpie60", "win7ie90"])
    progress: list[int] = []
    submission = plan.enqueue(connection, on_progress=progress.append)
    assert len(submission.jobs) == sum(progress) == plan.size == 12
    assert {(job.url, job.queue, job.useragent) for job in submission.jobs} == {
        (url, queue, variant.useragent)
        for url in plan.urls for queue in plan.queues for variant in plan.variants
    }


@pytest.mark.parametrize(
    "arguments, settings, message",
    [
        ((["htp://typo.test/"],), {}, "invalid URL"),
        ((URLS, ["Atlantis"]), {}, "unknown country 'Atlantis'"),
        ((URLS, ["IT"], None, ["nosuch"]), {}, "invalid useragent 'nosuch'"),
        ((URLS,), {"retries": 99}, "invalid retries 99"),
        ((URLS,), {"job_timeout": 10}, "invalid job timeout 10"),
    ],
)
def test_a_plan_is_refused_whole_before_any_connection(arguments, settings, message):
    with pytest.raises(InvalidInput, match=message):
        Plan(*arguments, **settings)


def test_unserved_names_the_country_queues_no_live_worker_serves(connection):
    plan = Plan(URLS[:1], ["IT", "US", "BR", "generic"])
    assert plan.unserved(connection) == ["IT", "US", "BR"]
    fleet.register(connection, record("IT.host.1", ["IT", "generic"]), ttl=60)
    fleet.register(connection, record("US.host.2", ["US", "generic"]), ttl=60)
    assert plan.unserved(connection) == ["BR"]
    fleet.unregister(connection, "US.host.2")
    assert plan.unserved(connection) == ["US", "BR"]


def test_generic_is_never_unserved_even_with_no_worker_at_all(connection):
    assert Plan(URLS[:1]).unserved(connection) == []


def test_enqueue_is_the_plan_in_one_call(connection):
    submission = enqueue(connection, URLS, ["IT"], retries=0)
    assert [job.url for job in submission.jobs] == URLS
    with pytest.raises(InvalidInput, match="invalid retries"):
        enqueue(connection, URLS, retries=-1)
