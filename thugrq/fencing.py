"""Fencing: the outcome of an attempt that another attempt replaced is refused, never written
over the replacement's.

A worker that stops mid-analysis (a paused VM, a long partition) loses its job: its heartbeat
lapses, RQ deems the job abandoned and another worker runs it again. When the first one comes
back its run goes on and ends, and RQ would record that stale outcome last, over the rescuer's:
`thugrq result` would show it, and a failure could even re-queue a finished job. So each
attempt has a token, RQ's execution id (known to the worker and to its horse), made the job's
current attempt when the worker starts it (`claim`) and no attempt's once the job is deemed
abandoned (`release`). Whatever records the attempt's outcome
(a result, a failure, an overrun, a dead horse) does so inside `fenced`: the worker's Redis
transactions then WATCH the job's attempt key and commit only while it still holds this
attempt's token, so the check and the write are one atomic step. The same transaction counts
the job in its group's tally (thugrq.tally) when the outcome ends it: a refused outcome is never
counted. A refused outcome is kept in
`thugrq:superseded:<job id>` (oldest first) for whoever investigates, never as the job's result.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job

from thugrq import tally
from thugrq.defaults import RESULT_TTL

log = logging.getLogger("thugrq.fencing")

#: The job's current attempt (a string key of its own: WATCHing the job hash would trip on
#: every heartbeat).
ATTEMPT_KEY = "thugrq:attempt:{}"
#: Refused outcomes of the job's replaced attempts, JSON, oldest first.
SUPERSEDED_KEY = "thugrq:superseded:{}"


class Superseded(Exception):
    """The attempt recording a job's outcome is no longer the job's current one."""


@dataclass
class Fence:
    """One attempt's right to record its job's outcome, and whether a write was refused."""

    job_id: str
    token: str
    refused: bool = False
    #: Called with the first transaction that records the outcome, to add its own writes.
    on_commit: Callable[[Pipeline], None] | None = None

    @property
    def key(self) -> str:
        return ATTEMPT_KEY.format(self.job_id)

    def holds(self, connection: Redis) -> bool:
        """Whether this attempt is the job's current one (a lapsed key: no attempt is)."""
        return connection.get(self.key) == self.token.encode()


def claim(connection: Redis, job: Job, token: str) -> None:
    """Make `token` the job's current attempt: earlier attempts' outcomes are refused from now on.

    The key outlives the attempt's run (its timeout) by the result TTL; an attempt that comes
    back even later finds no key and is refused too."""
    connection.set(ATTEMPT_KEY.format(job.id), token, ex=max(job.timeout or 0, 0) + RESULT_TTL)


def release(connection: Redis, job_id: str) -> None:
    """End the job's current attempt without a successor (its heartbeat lapsed and the job goes
    back to its queue): that attempt's outcome is refused from now on, even before another
    attempt claims the job, so a late one cannot finish a job that is queued to run again."""
    connection.delete(ATTEMPT_KEY.format(job_id))


class FencedPipeline(Pipeline):
    """A pipeline whose transactions commit only while its fence's attempt is the job's current
    one: it WATCHes the attempt key and checks it before MULTI (RQ's success path) or before a
    buffered transaction is sent (its failure paths); a claim in between fails the EXEC."""

    fence: Fence

    def multi(self) -> None:
        self._check()
        super().multi()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.transaction and not self.explicit_transaction and self.command_stack:
            self._check()
        if self.transaction and self.command_stack and self.fence.on_commit:
            on_commit, self.fence.on_commit = self.fence.on_commit, None
            on_commit(self)  # in the same MULTI/EXEC as the outcome it counts
        return super().execute(raise_on_error)

    def _check(self) -> None:
        self.watch(self.fence.key)
        if not self.fence.holds(self):
            self.fence.refused = True
            self.reset()
            raise Superseded(f"attempt {self.fence.token} of job {self.fence.job_id} was replaced")


class FencedRedis(Redis):
    """The worker's connection while it records an outcome: same pool, fenced pipelines."""

    def __init__(self, connection: Redis, fence: Fence) -> None:
        super().__init__(connection_pool=connection.connection_pool)
        self.fence = fence

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> FencedPipeline:
        pipeline = FencedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipeline.fence = self.fence
        return pipeline


class FencingWorker(Worker):
    """RQ's worker with each attempt claimed as it starts and its outcome recorded fenced."""

    def prepare_execution(self, job: Job) -> Execution:
        execution = super().prepare_execution(job)
        claim(self.connection, job, execution.id)  # before the horse exists: nothing to race
        return execution

    def handle_job_success(
        self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution
    ) -> None:
        # RQ's _finalize_success set job._result: the document, kept if the write is refused.
        write = functools.partial(
            super().handle_job_success, job, queue, started_job_registry, execution
        )
        fenced(self, job, execution.id, {"result": job._result}, write)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        write = functools.partial(
            super().handle_job_failure, job, queue, started_job_registry, exc_string, execution
        )
        fenced(self, job, execution.id if execution else None, {"failure": exc_string}, write)


def fenced(
    worker: Worker, job: Job, token: str | None, outcome: dict[str, Any], write: Callable[[], None]
) -> None:
    """Run `write`, RQ recording an outcome of `job`, so that `worker`'s transactions commit only
    while attempt `token` is the job's current one; a refused one leaves the job as its current
    attempt has it, and `outcome` is set aside as superseded. An attempt already replaced is
    refused before `write` starts: RQ sets a retried job's status outside its transaction. No
    token (a job RQ fails outside any attempt): nothing is fenced."""
    if token is None:
        write()
        tally.record_end(worker.connection, job)
        return
    fence = Fence(job.id, token, on_commit=functools.partial(tally.record_end, job=job))
    connection = worker.connection
    if not fence.holds(connection):
        fence.refused = True
    else:
        worker.connection = FencedRedis(connection, fence)
        try:
            write()
        except Superseded:  # the success path raises it; RQ's failure paths log and swallow it
            pass
        finally:
            worker.connection = connection
    if fence.refused:
        set_aside(connection, fence, worker.name, outcome)


def set_aside(connection: Redis, fence: Fence, worker_name: str, outcome: dict[str, Any]) -> None:
    """Keep a refused outcome where `superseded` finds it, and say so in the worker's log."""
    key = SUPERSEDED_KEY.format(fence.job_id)
    record = {"attempt": fence.token, "worker": worker_name, "refused_at": time.time(), **outcome}
    with connection.pipeline() as pipeline:
        pipeline.rpush(key, json.dumps(record, default=str))
        pipeline.expire(key, RESULT_TTL)
        pipeline.execute()
    log.warning(
        "job %s: outcome of replaced attempt %s refused (kept in %s)", fence.job_id, fence.token, key
    )


def superseded(connection: Redis, job_id: str) -> list[dict[str, Any]]:
    """The refused outcomes of a job's replaced attempts, oldest first."""
    return [json.loads(raw) for raw in connection.lrange(SUPERSEDED_KEY.format(job_id), 0, -1)]
