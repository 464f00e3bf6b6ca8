"""Reading a group however big it is: waiting for it, its summary, its jobs page by page, and
a comparison of its analyses bounded in what it reads.

A group of 50,000 jobs read job by job cost 300,000 commands per `thugrq wait` and 100,000 per
`thugrq group`. Here waiting reads the group's tally (thugrq.tally): a constant handful of
commands per poll. The summary is the tally; jobs are listed a page at a time (sorted by id, so
pages are stable); and cloaking differences are computed over at most `compare` completed
analyses, fetched in pipelined batches, the report saying when it was limited.

Given the collected store (thugrq.store), a job Redis no longer holds is read from there, and a
group Redis no longer holds is reported from its collected outcomes (`report_from_outcomes`),
counted, compared and paged the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq.group import Group
from rq.results import Result
from rq.serializers import JSONSerializer

from thugrq import job as jobs, tally
from thugrq.compare import Difference
from thugrq.exceptions import UnknownJob
from thugrq.job import Outcome, ThugrqJob
from thugrq.results import analysed_from
from thugrq.store import Store, nor_in, outcome as collected_outcome
from thugrq.submit import compare_outcomes

#: Jobs listed per page unless asked otherwise.
DEFAULT_LIMIT = 100
#: Completed analyses compared unless asked otherwise.
COMPARE_LIMIT = 1000
#: Jobs fetched per pipelined round trip when comparing.
BATCH = 200
#: Seconds between two polls of a wait.
INTERVAL = 0.5


def members(connection: Redis, group: str) -> list[str]:
    """The group's job ids, sorted (one SMEMBERS), or UnknownJob."""
    found = connection.smembers(Group.get_key(group))
    if not found:
        raise UnknownJob(f"no group {group!r} in Redis (never created, or expired)")
    return sorted(member.decode() for member in found)


@dataclass
class Waited:
    """How a wait for a group ended."""

    counts: tally.Counts
    #: Every job of the group ended (False: the timeout came first).
    done: bool
    polls: int


def wait(
    connection: Redis,
    group: str,
    timeout: float | None = None,
    interval: float = INTERVAL,
    on_progress: Callable[[int], None] | None = None,
) -> Waited:
    """Poll the group's tally until every job has ended or `timeout` seconds pass.

    A poll costs two reads and a bounded reconciliation step (thugrq.tally.Reconciler); when
    the counts say every job ended, one full check of the members (a command per 1,000) makes
    sure before returning. `on_progress` gets the number of jobs that ended since the last
    call."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if not connection.exists(Group.get_key(group)):
        raise UnknownJob(f"no group {group!r} in Redis (never created, or expired)")
    tally.ensure(connection, group)
    reconciler = tally.Reconciler(connection, group)
    reported = polls = 0
    confirmed: int | None = None
    while True:
        counts = tally.read(connection, group)
        polls += 1
        if on_progress and counts.ended > reported:
            on_progress(counts.ended - reported)
        reported = max(reported, counts.ended)
        if counts.ended >= counts.total and counts.ended != confirmed:
            confirmed = counts.ended
            if not reconciler.confirm():
                return Waited(counts, True, polls)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return Waited(counts, False, polls)
        reconciler.step()
        time.sleep(interval if left is None else max(min(interval, deadline - time.monotonic()), 0))


def page(
    connection: Redis, ids: list[str], offset: int, limit: int, store: Store | None = None
) -> list[Outcome]:
    """The outcomes of `ids[offset:offset + limit]`: a job gone from Redis meanwhile is read
    from `store` (collected, then expired), else listed as lost."""
    listed = []
    for job_id in ids[offset : offset + limit]:
        try:
            listed.append(jobs.outcome(connection, job_id))
        except UnknownJob:
            listed.append(_collected(store, job_id) or Outcome(
                job_id, None, None, None, tally.LOST, "no longer in Redis", None, 0, 0))
    return listed


def _collected(store: Store | None, job_id: str) -> Outcome | None:
    """The job's latest collected outcome, when there is a store and it holds the job."""
    line = store.job(job_id) if store is not None else None
    return None if line is None else collected_outcome(line)


@dataclass
class Compared:
    """The differences between a group's completed analyses, and how many were read."""

    differences: list[Difference]
    outcomes: list[Outcome]
    #: Completed analyses the tally knows of (those compared are at most `limit` of them).
    completed: int
    limit: int
    limited: bool = field(default=False)

    def to_dict(self) -> dict[str, Any]:
        return {"analyses": len(self.outcomes), "completed": self.completed,
                "limit": self.limit, "limited": self.limited}


def compare(
    connection: Redis, group: str, ids: list[str], limit: int = COMPARE_LIMIT,
    store: Store | None = None,
) -> Compared:
    """Differences between the group's completed analyses, over the first `limit` of them in id
    order: which ones completed comes from the tally's ends hash (a command per 1,000 ids),
    their jobs and results are fetched `BATCH` at a time in pipelines (from `store` for those
    Redis no longer holds)."""
    completed = int(connection.hget(tally.TALLY_KEY.format(group), "completed") or 0)
    chosen: list[str] = []
    ends_key = tally.ENDS_KEY.format(group)
    wanted = min(limit, completed)  # the tally knows how many there are: stop once found
    for first in range(0, len(ids), tally.SCAN_COUNT):
        if len(chosen) >= wanted:
            break
        chunk = ids[first : first + tally.SCAN_COUNT]
        chosen += [
            job_id for job_id, end in zip(chunk, connection.hmget(ends_key, chunk))
            if end and end.decode().split(" ", 1)[0] == "completed"
        ][: limit - len(chosen)]
    outcomes = [
        outcome for first in range(0, len(chosen), BATCH)
        for outcome in _completed(connection, chosen[first : first + BATCH], store)
    ]
    return Compared(compare_outcomes(outcomes), outcomes, completed, limit, completed > len(chosen))


def _completed(connection: Redis, ids: list[str], store: Store | None) -> list[Outcome]:
    """The outcomes of completed jobs, read in two pipelined round trips (and from `store`,
    one by one, for those gone from Redis)."""
    found = ThugrqJob.fetch_many(ids, connection=connection, serializer=JSONSerializer)
    pipeline = connection.pipeline(transaction=False)
    for job_id in ids:
        pipeline.xrevrange(Result.get_key(job_id), "+", "-", count=1)
    outcomes = []
    for job_id, job, latest in zip(ids, found, pipeline.execute()):
        if job is None or not latest:
            collected = _collected(store, job_id)
            if collected is not None:
                outcomes.append(collected)
            continue
        result = Result.restore(job_id, latest[0][0].decode(), latest[0][1], connection=connection,
                                serializer=JSONSerializer)
        document = result.return_value if isinstance(result.return_value, dict) else {}
        summary = document.get("summary") or {}
        url, useragent = jobs._safe_args(job)
        outcomes.append(Outcome(
            id=job_id, url=url, queue=job.origin, useragent=useragent,
            status=document.get("status") or "finished", reason=document.get("error"),
            final_url=summary.get("final_url"), exploits=len(summary.get("exploits") or []),
            samples=len(summary.get("samples") or []),
            analysed_from=analysed_from(document) if document else None, summary=summary or None,
        ))
    return outcomes


@dataclass
class Report:
    """What `thugrq group` shows: the counts first, the differences, then one page of jobs."""

    group: str
    counts: tally.Counts
    compared: Compared
    listed: list[Outcome]
    #: Jobs of the group (the pages' length).
    total: int
    offset: int
    limit: int
    #: The collected store the report was read from (the group gone from Redis), else None.
    read_from: str | None = None

    @property
    def more(self) -> int:
        return max(self.total - self.offset - len(self.listed), 0)

    @property
    def misplaced(self) -> list[Outcome]:
        """Country jobs analysed elsewhere, among the jobs read (compared or listed)."""
        return list({o.id: o for o in self.compared.outcomes + self.listed if o.misplaced}.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "store": self.read_from,
            "summary": self.counts.to_dict(),
            "differences": [d.to_dict() for d in self.compared.differences],
            "compared": self.compared.to_dict(),
            "misplaced": sorted(o.id for o in self.misplaced),
            "jobs": [o.to_dict() for o in self.listed],
            "page": {"offset": self.offset, "limit": self.limit, "listed": len(self.listed),
                     "total": self.total, "more": self.more},
        }


def report(
    connection: Redis, group: str, offset: int = 0, limit: int = DEFAULT_LIMIT,
    compare_limit: int = COMPARE_LIMIT, store: Store | None = None,
) -> Report:
    """Summarise a group (or UnknownJob): its tally, after one bounded reconciliation step; the
    differences over at most `compare_limit` completed analyses; and jobs offset..offset+limit.
    Jobs, or the whole group, that Redis no longer holds are read from `store` when given."""
    try:
        ids = members(connection, group)
    except UnknownJob as error:
        collected = store.outcomes(group) if store is not None else []
        if not collected:
            raise UnknownJob(f"{error}{nor_in(store)}") from error
        return report_from_outcomes(group, collected, offset, limit, compare_limit, str(store.root))
    tally.ensure(connection, group)
    tally.Reconciler(connection, group).step()
    counts = tally.read(connection, group)
    compared = compare(connection, group, ids, compare_limit, store)
    listed = page(connection, ids, offset, limit, store)
    return Report(group, counts, compared, listed, len(ids), offset, limit)


def report_from_outcomes(
    group: str, outcomes: list[Outcome], offset: int = 0, limit: int = DEFAULT_LIMIT,
    compare_limit: int = COMPARE_LIMIT, read_from: str | None = None,
) -> Report:
    """The report of a group from its ended jobs' outcomes, sorted by id, read elsewhere than
    Redis (`read_from`, the collected store's `outcomes`): counted as its tally would count them,
    compared over the first `compare_limit` completed ones, paged alike."""
    completed = [outcome for outcome in outcomes if tally.counted_as(outcome) == "completed"]
    chosen = completed[:compare_limit]
    compared = Compared(compare_outcomes(chosen), chosen, len(completed), compare_limit,
                        len(completed) > len(chosen))
    listed = outcomes[offset : offset + limit]
    return Report(group, tally.count(group, outcomes), compared, listed, len(outcomes), offset,
                  limit, read_from)
