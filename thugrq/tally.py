"""A group's tally: how many of its jobs ended, and how, counted as each one ends.

Reading a big group job by job cost 6 commands a job on every poll of `thugrq wait`; the
tally makes a poll a constant handful of commands whatever the group's size. Two keys per
group, with the group's TTL, written by a server-side script so that counting a job twice is
impossible (a job that ends again, re-queued by hand, moves from its old status to its new):

- `thugrq:tally:<group>`, a hash: `total` and `total:<queue>` (set at enqueue), `ended`,
  `<status>` and `<status>:<queue>`, where status is an outcome's (`completed`, `timeout`,
  `error` for a finished analysis; `failed`, `stopped`, `canceled`; `lost` for a job whose hash
  vanished before it ended).
- `thugrq:tally:<group>:ends`, a hash: job id -> "status queue", the jobs counted.

The worker counts a job inside the very transaction in which RQ records its outcome (see
thugrq.fencing: a refused, superseded outcome is never counted). Jobs that end elsewhere (a
cancel, an abandoned job failed by RQ's registry cleaning, a hash deleted or expired) are found
by `Reconciler`, a bounded look at a few uncounted jobs per poll, and at the end by a full check
of the group's members against the ends hash (one command per 1,000 jobs, once).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq.group import Group
from rq.job import Job, JobStatus

from thugrq.job import Outcome, result

TALLY_KEY = "thugrq:tally:{}"
ENDS_KEY = "thugrq:tally:{}:ends"
#: The outcome of a job whose hash is gone before it ended (deleted, expired).
LOST = "lost"
#: What a finished analysis can end as (the result document's status).
ANALYSIS_STATUSES = ("completed", "timeout", "error")
#: RQ's final states other than finished, by the name the tally counts them under.
FAILURES = {JobStatus.FAILED: "failed", JobStatus.STOPPED: "stopped", JobStatus.CANCELED: "canceled"}
#: Every status the tally counts, in the order reports list them.
STATUSES = (*ANALYSIS_STATUSES, *FAILURES.values(), LOST)
#: Most commands `Reconciler.step` spends on one poll (reads; counting a found end adds one).
RECONCILE_BUDGET = 8
#: Members one SSCAN step asks for, and fields per HMGET of the ends hash.
SCAN_COUNT = 1000

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local new = ARGV[2] .. ' ' .. ARGV[3]
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old == new then return 0 end
if old then
  local status, queue = string.match(old, '^(%S+) (.*)$')
  redis.call('HINCRBY', KEYS[1], status, -1)
  redis.call('HINCRBY', KEYS[1], status .. ':' .. queue, -1)
else
  redis.call('HINCRBY', KEYS[1], 'ended', 1)
end
redis.call('HSET', KEYS[2], ARGV[1], new)
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('HINCRBY', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 1)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return 1
"""


def start(pipeline: Pipeline, group: str, per_queue: dict[str, int], ttl: int) -> None:
    """Open the tally of a group being enqueued (in the enqueue's transaction)."""
    key = TALLY_KEY.format(group)
    totals = {f"total:{queue}": count for queue, count in per_queue.items()}
    pipeline.hset(key, mapping={"total": sum(per_queue.values()), "ended": 0, **totals})
    pipeline.expire(key, ttl)


def record(client: Redis | Pipeline, group: str, job_id: str, status: str, queue: str) -> Any:
    """Count `job_id` as ended with `status` (once: again with the same status changes nothing).
    A group without a tally (enqueued before tallies, or expired) is left alone."""
    script = client.register_script(_RECORD)  # cached by redis-py's pipeline and the server
    return script(keys=[TALLY_KEY.format(group), ENDS_KEY.format(group)],
                  args=[job_id, status, queue or "-"], client=client)


def end_status(job: Job) -> str | None:
    """The status the tally counts for `job` as RQ last set it in memory, or None when the job
    has not ended (queued again for a retry, for instance)."""
    status = job.get_status(refresh=False)
    if status == JobStatus.FINISHED:
        document = getattr(job, "_result", None)
        found = document.get("status") if isinstance(document, dict) else None
        return found if found in ANALYSIS_STATUSES else "completed"
    return FAILURES.get(status)  # type: ignore[arg-type]


def record_end(client: Redis | Pipeline, job: Job) -> None:
    """Count `job` in its group's tally if RQ just ended it; nothing otherwise. The worker calls
    it in the transaction that records the outcome (thugrq.fencing)."""
    status = end_status(job)
    if status and job.group_id:
        record(client, job.group_id, job.id, status, job.origin)


@dataclass
class Counts:
    """What a group's tally says, read in one round trip (`read`)."""

    group: str
    #: Jobs of the group still in Redis (its RQ set; deleted jobs leave it).
    total: int
    ended: int
    statuses: dict[str, int] = field(default_factory=dict)
    #: queue -> {"total": n, status: n, ...}
    queues: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Whether the group has a tally at all (groups enqueued before tallies have none).
    tallied: bool = True

    @property
    def remaining(self) -> int:
        return max(self.total - self.ended, 0)

    @property
    def all_completed(self) -> bool:
        return self.total > 0 and self.statuses.get("completed", 0) >= self.total

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "total": self.total, "ended": self.ended,
            "remaining": self.remaining, "statuses": self.statuses, "queues": self.queues,
        }


def read(connection: Redis, group: str) -> Counts:
    """The group's counts: two commands (HGETALL of the tally, SCARD of RQ's group set)."""
    pipeline = connection.pipeline(transaction=False)
    pipeline.hgetall(TALLY_KEY.format(group))
    pipeline.scard(Group.get_key(group))
    raw, members = pipeline.execute()
    fields = {k.decode(): int(v) for k, v in raw.items()}
    statuses = {s: fields[s] for s in STATUSES if fields.get(s)}
    queues: dict[str, dict[str, int]] = defaultdict(dict)
    for name, value in fields.items():
        kind, _, queue = name.partition(":")
        if queue and value and (kind == "total" or kind in STATUSES):
            queues[queue][kind] = value
    return Counts(group, members, fields.get("ended", 0), statuses, dict(queues), bool(raw))


def counted_as(outcome: Outcome) -> str:
    """The status a tally counts an ended job's outcome under: a finished job whose document
    names no analysis status is counted completed, as the worker counts it."""
    return outcome.status if outcome.status in STATUSES else "completed"


def count(group: str, outcomes: Iterable[Outcome]) -> Counts:
    """The counts a tally would hold for these ended jobs, read elsewhere than Redis (the
    collected store keeps no tally)."""
    statuses: Counter[str] = Counter()
    queues: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        status = counted_as(outcome)
        statuses[status] += 1
        queues[outcome.queue or "-"].update(("total", status))
    ended = sum(statuses.values())
    return Counts(group, ended, ended, {s: statuses[s] for s in STATUSES if statuses[s]},
                  {queue: dict(row) for queue, row in queues.items()}, tallied=False)


def ensure(connection: Redis, group: str) -> None:
    """Give a group enqueued before tallies one (empty: `Reconciler` fills it), with the
    group's own TTL."""
    key = TALLY_KEY.format(group)
    if connection.hsetnx(key, "ended", 0):
        ttl = connection.pttl(Group.get_key(group))
        if ttl > 0:
            connection.pexpire(key, ttl)


class Reconciler:
    """Finds, a few at a time, the group's jobs that ended without the tally hearing of it.

    Each `step` sends at most RECONCILE_BUDGET commands (plus one per end it counts): it walks
    the group's set with SSCAN, keeps the members the ends hash lacks, and reads the status of
    a few of them. `confirm` checks every member at once: the waiter calls it when the counts
    say the group is done, to be sure before saying so.
    """

    def __init__(self, connection: Redis, group: str) -> None:
        self.connection = connection
        self.group = group
        self.cursor = 0
        self.pending: list[str] = []

    def step(self, budget: int = RECONCILE_BUDGET) -> int:
        """Look at a few uncounted jobs; how many ends were counted."""
        spent = counted = 0
        while spent < budget:
            if self.pending:
                batch, self.pending = self.pending[: budget - spent], self.pending[budget - spent :]
                spent += len(batch)
                counted += self._check(batch)
                continue
            if spent + 2 > budget:
                break
            self.cursor, members = self.connection.sscan(
                Group.get_key(self.group), self.cursor, count=SCAN_COUNT
            )
            self.pending = self._uncounted([m.decode() for m in members])
            spent += 2
            if self.cursor == 0 and not self.pending:
                break  # a whole pass found nothing: leave the rest of the budget unspent
        return counted

    def confirm(self) -> list[str]:
        """Every member of the group the tally has not counted (queued for `step` to check)."""
        members = [m.decode() for m in self.connection.smembers(Group.get_key(self.group))]
        self.pending = self._uncounted(members)
        return list(self.pending)

    def _uncounted(self, members: list[str]) -> list[str]:
        uncounted = []
        for first in range(0, len(members), SCAN_COUNT):
            chunk = members[first : first + SCAN_COUNT]
            ends = self.connection.hmget(ENDS_KEY.format(self.group), chunk)
            uncounted += [job_id for job_id, end in zip(chunk, ends) if end is None]
        return uncounted

    def _check(self, job_ids: list[str]) -> int:
        pipeline = self.connection.pipeline(transaction=False)
        for job_id in job_ids:
            pipeline.hmget(Job.key_for(job_id), "status", "origin")
        counted = 0
        for job_id, (status, origin) in zip(job_ids, pipeline.execute()):
            queue = origin.decode("utf-8", "replace") if origin else "-"
            found = LOST if status is None else _final(self.connection, job_id, status.decode())
            if found:
                counted += bool(record(self.connection, self.group, job_id, found, queue))
        return counted


def _final(connection: Redis, job_id: str, status: str) -> str | None:
    """The tally's status for a job found in RQ's `status`, or None if it has not ended."""
    if status == JobStatus.FINISHED.value:
        try:
            document = result(connection, job_id)[1] or {}
        except Exception:  # noqa: BLE001 - a hash nobody can read still ended
            document = {}
        found = document.get("status")
        return found if found in ANALYSIS_STATUSES else "completed"
    return FAILURES.get(JobStatus(status)) if status in {s.value for s in FAILURES} else None


def per_queue(queues: Iterable[str]) -> dict[str, int]:
    """How many jobs go to each queue, from one queue name per job."""
    return dict(Counter(queues))
