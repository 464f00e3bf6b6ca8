"""A worker's side of outages: Redis out of reach, and the jobs of hosts that were lost.

A partition (a link down, a VPN reconnecting) must not cost a worker its analysis or its life.
In RQ the heartbeat sent every few seconds while a work horse runs raises when Redis cannot be
reached, as does recording the horse's end or a maintenance step, and any of them ends the
worker, whose horse dies with it (thugrq.worker ties them): a host cut off for a few seconds
would lose its analysis and stop serving its country. `RidesOut` keeps watching the horse
instead, and waits for Redis to come back before the next step; a horse that ends while Redis
is away waits for it to record its outcome.

A host lost outright leaves its job in the started registry until its heartbeat expires; the
next cleaning by a worker of that queue finds it. RQ then retries it after the crash backoff,
through the scheduler, whose lock for the queue the lost host may hold for another 61 s: the job
would run again only a minute or more after the loss. An abandoned job is re-queued at once
instead (thugrq.job.ThugrqJob.abandoned).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from redis.exceptions import ConnectionError, TimeoutError
from rq import Queue, Worker
from rq.exceptions import AbandonedJobError
from rq.executions import Execution
from rq.job import Job

from thugrq import fencing

#: What redis-py raises while Redis is out of reach.
OUTAGE = (ConnectionError, TimeoutError)

log = logging.getLogger("thugrq.worker")


def retry_at_once(
    job: Job, exc_type: type[BaseException], exc_value: BaseException, tb: TracebackType | None
) -> bool:
    """An exception handler: RQ's cleaning calls it on each abandoned job just before retrying
    it, and the job's retry is then queued at once (see the module's docstring); the lost
    attempt's claim ends there (a late outcome of it is refused: thugrq.fencing)."""
    if exc_type is AbandonedJobError:
        job.abandoned = True  # type: ignore[attr-defined]
        fencing.release(job.connection, job.id)
    return True


class RidesOut(Worker):
    """Mixed into thugrq's worker before RQ's: an analysis goes on while Redis is away, the
    worker waits for it to come back, and abandoned jobs are retried at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.push_exc_handler(retry_at_once)

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        try:
            super().maintain_heartbeats(job, execution)
        except OUTAGE as error:
            log.warning(
                "Redis unreachable while job %s runs (%s): the analysis goes on", job.id, error
            )

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        except OUTAGE as error:
            # An outcome the horse could not record is left to the cleaning, which runs it again.
            log.warning("Redis unreachable as job %s ended (%s)", job.id, error)
            self.wait_for_redis()

    def _finalize_success(self, job: Job, queue: Queue, execution: Execution, result: Any) -> None:
        self._when_reachable(super()._finalize_success, job, queue, execution, result)

    def _finalize_failure(self, job: Job, queue: Queue, execution: Execution, exc_info: Any) -> None:
        self._when_reachable(super()._finalize_failure, job, queue, execution, exc_info)

    def _when_reachable(self, finalize: Callable[..., None], job: Job, *args: Any) -> None:
        """In the horse: record the job's outcome once Redis answers again. An analysis made in
        full during a partition is kept rather than run again; one that comes back after its
        job went to another attempt is refused then (thugrq.fencing), and the worker kills a
        horse still waiting at the job's timeout + 60 s."""
        while True:
            try:
                return finalize(job, *args)
            except OUTAGE as error:
                log.warning("Redis unreachable as job %s ended (%s): its outcome waits", job.id, error)
                self.wait_for_redis()

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except OUTAGE as error:
            log.warning("Redis unreachable during maintenance (%s)", error)
            self.wait_for_redis()

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except OUTAGE as error:
            log.warning("Redis unreachable (%s)", error)
            self.wait_for_redis()

    def wait_for_redis(self) -> None:
        """Try Redis until it answers, at most max_connection_wait_time seconds apart."""
        pause = 1.0
        while True:
            try:
                self.connection.ping()
            except OUTAGE as error:
                log.warning("Redis still unreachable (%s): trying again in %.0f s", error, pause)
                time.sleep(pause)
                pause = min(pause * 2, self.max_connection_wait_time)
            else:
                log.warning("Redis reachable again")
                return
