"""Fencing (issue 14, item 6): a worker that comes back after its job was run again elsewhere
does not overwrite the run that replaced it (thugrq.fencing)."""

from __future__ import annotations

import json

import psutil
import pytest
from redis.exceptions import WatchError
from rq.registry import StartedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.conftest import wait_for
from tests.test_reliability import horse_of, job, status, successful_runs
from thugrq import fencing, outages
from thugrq.job import ThugrqJob

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running


def freeze_mid_job(
    thugrq, background_worker, site, connection, seconds: int, timeout: int
) -> tuple[str, psutil.Process, psutil.Process]:
    """A job on a page that takes `seconds`, started by worker `frozen`, which is then stopped
    with its horse (SIGSTOP: a paused VM; its heartbeat lapses and RQ deems the job abandoned);
    the job's id, the worker and the horse."""
    job_id = thugrq(
        "enqueue", site.url(f"/paced?seconds={seconds}"), "--timeout", str(timeout), check=True
    ).stdout.strip()
    frozen = background_worker("--queue", "generic", "--name", "frozen")
    horse = horse_of(frozen)
    wait_for(lambda: status(connection, job_id) == "started")
    parent = psutil.Process(frozen.pid)
    for process in (parent, horse):
        process.suspend()
    return job_id, parent, horse


def test_a_frozen_worker_that_comes_back_does_not_overwrite_its_rescuer(
    thugrq, background_worker, site, connection
):
    # The page takes 4 s, well within the analysis timeout; the frozen run overruns it once it
    # is thawed (its deadline passed while it was stopped), as a paused VM's would.
    job_id, parent, horse = freeze_mid_job(thugrq, background_worker, site, connection, 4, 15)
    try:
        background_worker("--queue", "generic", "--name", "rescuer")
        wait_for(lambda: status(connection, job_id) == "finished", timeout=150, interval=0.5)
    finally:
        for process in (parent, horse):
            process.resume()  # SIGCONT: the stale run goes on and ends
    horse.wait(timeout=60)

    assert status(connection, job_id) == "finished"
    document = json.loads(thugrq("result", job_id, "--json", check=True).stdout)
    assert (document["worker"]["name"], document["status"]) == ("rescuer", "completed")
    shown = thugrq("result", job_id, check=True).stdout.splitlines()
    analysed = next(line for line in shown if line.startswith("Analysed"))
    assert "by rescuer" in analysed
    [superseded] = [line for line in shown if line.startswith("Superseded")]
    assert "by frozen" in superseded and "not this job's outcome" in superseded
    assert successful_runs(connection, job_id) == 1  # the result stream holds the rescuer's only
    [late] = fencing.superseded(connection, job_id)
    assert late["worker"] == "frozen" and late["result"]["worker"]["name"] == "frozen"
    assert late["result"]["status"] in ("timeout", "completed")


def test_the_death_of_a_replaced_horse_is_not_recorded_over_the_running_rescue(
    thugrq, background_worker, site, connection
):
    """The failure path: the frozen worker comes back to find its horse dead while the rescuer
    still runs the job. Unfenced, RQ would record that failure and re-queue the job (a third
    run); fenced, it is set aside and the rescue finishes alone."""
    job_id, parent, horse = freeze_mid_job(thugrq, background_worker, site, connection, 10, 30)
    try:
        background_worker("--queue", "generic", "--name", "rescuer")
        wait_for(lambda: job(connection, job_id).worker_name == "rescuer", timeout=150, interval=0.5)
        horse.kill()
    finally:
        parent.resume()
    [late] = wait_for(lambda: fencing.superseded(connection, job_id), timeout=30)
    assert late["worker"] == "frozen" and "Work-horse terminated unexpectedly" in late["failure"]
    assert status(connection, job_id) == "started"  # the rescue goes on, untouched
    wait_for(lambda: status(connection, job_id) == "finished", timeout=60, interval=0.5)
    document = json.loads(thugrq("result", job_id, "--json", check=True).stdout)
    assert (document["worker"]["name"], document["status"]) == ("rescuer", "completed")
    assert [r.type for r in job(connection, job_id).results()] == [Result.Type.SUCCESSFUL]


def test_a_frozen_worker_that_comes_back_before_any_rescue_does_not_finish_the_requeued_job(
    thugrq, background_worker, site, connection
):
    """The claim ends when the cleaning re-queues the abandoned job, not when a rescuer takes
    it: the stale outcome is refused, the job runs again (here on the thawed worker itself),
    and its result stream holds that run only."""
    job_id, parent, horse = freeze_mid_job(thugrq, background_worker, site, connection, 4, 15)
    try:
        registry = StartedJobRegistry(
            "generic", connection=connection, job_class=ThugrqJob, serializer=JSONSerializer
        )
        wait_for(lambda: job_id in registry.get_expired_job_ids(), timeout=60, interval=0.5)
        registry.cleanup(exception_handlers=[outages.retry_at_once])  # as a worker's cleaning does
        assert status(connection, job_id) == "queued"
    finally:
        for process in (parent, horse):
            process.resume()
    late = wait_for(lambda: fencing.superseded(connection, job_id), timeout=60)
    # One attempt, refused once or (on a loaded machine, where its deadline thread records the
    # overrun before the main thread's timeout lands) twice.
    assert {record["worker"] for record in late} == {"frozen"}
    wait_for(lambda: status(connection, job_id) == "finished", timeout=60, interval=0.5)
    assert successful_runs(connection, job_id) == 1


def test_a_replaced_attempts_transaction_is_refused_even_when_the_claim_comes_last(connection):
    """The atomic half of the fence, without workers: a claim between the check before MULTI
    and the EXEC fails the EXEC; a buffered transaction of a replaced attempt is never sent."""
    fence = fencing.Fence("job", "attempt-1")
    connection.set(fence.key, "attempt-1")
    pipeline = fencing.FencedRedis(connection, fence).pipeline()
    pipeline.multi()  # checked here: still current
    pipeline.set("outcome", "stale")
    connection.set(fence.key, "attempt-2")  # the rescuer claims the job
    with pytest.raises(WatchError):
        pipeline.execute()
    buffered = fencing.FencedRedis(connection, fence).pipeline()
    buffered.set("outcome", "stale")
    with pytest.raises(fencing.Superseded):
        buffered.execute()
    assert connection.get("outcome") is None and fence.refused
