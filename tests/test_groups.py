"""Reading big groups (issue 16, item 6): waiting costs a bounded number of Redis commands per
poll whatever the group's size, --timeout is honoured, and `thugrq group` summarises first and
lists jobs page by page.

Most tests need no worker: jobs are enqueued by the batch write and their end is recorded
through the worker's own outcome path (thugrq.fencing.fenced, which counts the job in its
group's tally in the transaction that records it). One test runs a real burst worker.
"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from thugrq import fencing, groups, submit, tally
from thugrq.job import ThugrqJob

#: Most commands a poll of a group wait may send, on average over a 1 s wait: two reads of the
#: tally and the reconciliation step's budget, plus one for the wait's own start-up (a group
#: existence check and its tally's), spread over its polls. The same for every group size.
PER_POLL = 2 + tally.RECONCILE_BUDGET + 1


def enqueue(connection, count: int, queues=("generic",)) -> submit.Submission:
    return submit.enqueue(connection, [f"http://h{i}.test/" for i in range(count)], list(queues))


def end(connection, job_id: str, status: str = "completed", token: str = "attempt-1") -> None:
    """End a job the way a worker does: claim the attempt, then record the outcome inside
    `fencing.fenced` (`status`: an analysis status, or RQ's failed/stopped)."""
    job = ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    if not connection.exists(fencing.ATTEMPT_KEY.format(job_id)):
        fencing.claim(connection, job, token)
    worker = SimpleNamespace(connection=connection, name="simulated")
    final = JobStatus.FINISHED if status in tally.ANALYSIS_STATUSES else JobStatus(status)
    job._result = {"status": status}

    def write() -> None:
        with worker.connection.pipeline() as pipeline:
            job.set_status(final, pipeline=pipeline)
            pipeline.execute()

    fencing.fenced(worker, job, token, {"result": job._result}, write)


def commands(connection) -> int:
    return connection.info("stats")["total_commands_processed"]


def commands_per_poll(connection, group: str) -> float:
    before = commands(connection)
    waited = groups.wait(connection, group, timeout=1.0, interval=0.05)
    assert not waited.done and waited.polls >= 5
    return (commands(connection) - before - 1) / waited.polls  # -1: the INFO that reads it


@pytest.mark.parametrize("size", [500, 5000])
def test_a_poll_of_a_group_wait_costs_the_same_few_commands_at_any_size(connection, size):
    group = enqueue(connection, size).group
    assert commands_per_poll(connection, group) <= PER_POLL


def test_wait_timeout_returns_after_the_timeout_and_well_before_timeout_plus_5_s(thugrq, connection):
    group = enqueue(connection, 5000).group
    started = time.monotonic()
    waited = thugrq("wait", "--group", group, "--timeout", "2")
    elapsed = time.monotonic() - started
    assert waited.returncode == 1
    assert 2 <= elapsed < 2 + 5
    assert f"group {group}: timed out after 2 s; 5000 job(s), 0 ended" in waited.stderr
    assert len(waited.stdout.splitlines()) == 1 + groups.DEFAULT_LIMIT  # header and one page


def test_the_worker_path_counts_each_end_once_in_the_group_tally(connection):
    submission = enqueue(connection, 4)
    ids = [job.id for job in submission.jobs]
    end(connection, ids[0], "completed")
    end(connection, ids[0], "completed")  # recorded again: not counted again
    end(connection, ids[1], "timeout")
    end(connection, ids[2], "failed")
    counts = tally.read(connection, submission.group)
    assert (counts.total, counts.ended) == (4, 3)
    assert counts.statuses == {"completed": 1, "timeout": 1, "failed": 1}
    assert counts.queues == {"generic": {"total": 4, "completed": 1, "timeout": 1, "failed": 1}}


def test_a_refused_outcome_of_a_replaced_attempt_is_not_counted(connection):
    submission = enqueue(connection, 1)
    job_id = submission.jobs[0].id
    job = ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    fencing.claim(connection, job, "first")
    fencing.claim(connection, job, "rescuer")  # the job was run again elsewhere
    end(connection, job_id, "error", token="first")
    assert tally.read(connection, submission.group).ended == 0
    assert fencing.superseded(connection, job_id)
    end(connection, job_id, "completed", token="rescuer")
    assert tally.read(connection, submission.group).statuses == {"completed": 1}


def test_jobs_that_end_outside_a_worker_do_not_make_the_wait_hang(connection):
    submission = enqueue(connection, 50)
    ids = [job.id for job in submission.jobs]
    for job_id in ids[:48]:
        end(connection, job_id)
    connection.delete(ThugrqJob.key_for(ids[48]))  # expired or deleted, still in the group's set
    ThugrqJob.fetch(ids[49], connection=connection, serializer=JSONSerializer).cancel()
    waited = groups.wait(connection, submission.group, timeout=30, interval=0.05)
    assert waited.done
    assert tally.read(connection, submission.group).statuses == {
        "completed": 48, "lost": 1, "canceled": 1,
    }


def test_wait_exits_zero_as_soon_as_every_job_of_the_group_completed(thugrq, connection):
    submission = enqueue(connection, 30)
    for job in submission.jobs:
        end(connection, job.id)
    waited = thugrq("wait", "--group", submission.group, "--json")
    assert waited.returncode == 0, waited.stderr
    listed = [json.loads(line)["id"] for line in waited.stdout.splitlines()]
    assert listed == sorted(job.id for job in submission.jobs)
    assert "every job ended; 30 job(s), 30 ended (30 completed), 0 not ended" in waited.stderr


def test_group_pages_list_the_right_slices_of_the_jobs_sorted_by_id(thugrq, connection):
    submission = enqueue(connection, 250)
    ids = sorted(job.id for job in submission.jobs)
    for offset, limit, more in ((0, 100, 150), (200, 100, 0), (240, 5, 5)):
        shown = json.loads(thugrq(
            "group", submission.group, "--json", "--offset", str(offset), "--limit", str(limit),
            check=True,
        ).stdout)
        assert [row["id"] for row in shown["jobs"]] == ids[offset : offset + limit]
        listed = len(ids[offset : offset + limit])
        assert shown["page"] == {
            "offset": offset, "limit": limit, "listed": listed, "total": 250, "more": more,
        }
    text = thugrq("group", submission.group, check=True).stdout
    assert f"listed jobs 1-100 of 250; 150 more: thugrq group {submission.group} --offset 100" in text


def test_group_summary_counts_per_status_and_per_queue(thugrq, connection):
    submission = enqueue(connection, 20, queues=("IT", "generic"))
    italian = [job.id for job in submission.jobs if job.queue == "IT"]
    generic = [job.id for job in submission.jobs if job.queue == "generic"]
    for job_id in italian[:5]:
        end(connection, job_id, "completed")
    for job_id in italian[5:7]:
        end(connection, job_id, "failed")
    end(connection, generic[0], "timeout")
    shown = json.loads(thugrq("group", submission.group, "--json", "--limit", "0", check=True).stdout)
    assert shown["summary"] == {
        "group": submission.group, "total": 40, "ended": 8, "remaining": 32,
        "statuses": {"completed": 5, "failed": 2, "timeout": 1},
        "queues": {"IT": {"total": 20, "completed": 5, "failed": 2},
                   "generic": {"total": 20, "timeout": 1}},
    }
    assert shown["jobs"] == []
    text = thugrq("group", submission.group, "--limit", "0", check=True).stdout
    assert "6 of 40 analyses finished." in text
    assert any(line.split() == ["IT", "20", "5", "0", "2", "13"] for line in text.splitlines())


def test_counts_are_right_after_a_real_worker_finishes_and_fails_jobs(thugrq, burst_worker, site, connection):
    enqueued = thugrq("enqueue", site.url("/chain/final"), site.url("/activex"), "http://x.test/",
                      "--json", check=True)
    rows = [json.loads(line) for line in enqueued.stdout.splitlines()]
    refused = ThugrqJob.fetch(rows[2]["id"], connection=connection, serializer=JSONSerializer)
    refused.args = (refused.args[0], {**refused.args[1], "threshold": "all"})  # refused by the worker
    refused.save()
    ran = burst_worker("--queue", "generic")
    assert ran.returncode == 0, ran.stderr
    group = rows[0]["group"]
    # Counted by the worker as each job ended, before anyone read the group.
    assert tally.read(connection, group).statuses == {"completed": 2, "failed": 1}
    waited = thugrq("wait", "--group", group)
    assert waited.returncode == 1
    assert "3 job(s), 3 ended (2 completed, 1 failed), 0 not ended" in waited.stderr
    shown = json.loads(thugrq("group", group, "--json", "--compare", "1", check=True).stdout)
    assert shown["summary"]["queues"] == {"generic": {"total": 3, "completed": 2, "failed": 1}}
    assert shown["compared"] == {"analyses": 1, "completed": 2, "limit": 1, "limited": True}
    assert "Compared 1 of 2 completed analyses (--compare 1)" in thugrq(
        "group", group, "--compare", "1", check=True
    ).stdout
