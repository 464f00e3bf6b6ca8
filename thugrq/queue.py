"""thugrq's RQ queue and job classes, shared by submitters and workers.

Redis is the trust boundary, so a worker trusts nothing it dequeues: jobs are JSON (never
pickle), and a job naming any other function, an instance, or a callback is refused before
anything is imported. RQ by default would import and call any dotted name, even `eval`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job
from rq.serializers import JSONSerializer

from thugrq import analysis, config, defaults, jobhash, quarantine
from thugrq.context import AnalysisContext
from thugrq.exceptions import RefusedJob

#: Where the reason goes when a job hash cannot be read at all.
REFUSAL_FIELD = "thugrq_refusal"


class ThugrqJob(Job):
    """An RQ job that resolves to `thugrq.analysis.analyze` or refuses to run."""

    #: Why the hash this job was read from is refused (see thugrq.jobhash), if it is.
    _hash_refusal: str | None = None
    #: The context the worker running this job gives its analysis (None: the environment's).
    context: AnalysisContext | None = None

    @property
    def func(self):  # type: ignore[override]
        refusal = self.refusal()
        if refusal:
            raise RefusedJob(refusal)
        return functools.partial(analysis.analyze, context=self.context)

    def restore(self, raw_data: dict) -> Any:
        clean, self._hash_refusal = jobhash.sanitize(raw_data)
        return super().restore(clean)

    def refusal(self) -> str | None:
        """Why this job must not run, or None when it is a well-formed analysis."""
        if self._hash_refusal:
            return self._hash_refusal
        if self.webhooks or self._dependency_ids or self.repeats_left:
            return "refused: job names a webhook, dependencies or repetition"
        try:
            name, instance, args, kwargs = self.func_name, self.instance, self.args, self.kwargs
        except Exception as error:  # noqa: BLE001 - unreadable data is a refusal, not a crash
            return f"refused: job data cannot be read ({type(error).__name__})"
        if name not in analysis.JOB_FUNCTIONS:
            return f"refused: job function {str(name)[:200]!r} is not {analysis.ANALYZE}"
        if instance is not None:
            return "refused: job names an instance"
        callbacks = (
            self._success_callback_name,
            self._failure_callback_name,
            self._stopped_callback_name,
        )
        if any(callbacks):
            return "refused: job names a callback"
        if kwargs or not isinstance(args, (list, tuple)) or len(args) != 2:
            return "refused: job arguments must be exactly (url, options)"
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        """Never: RQ would send them to any URL the job names, from the worker's network."""

    # Callbacks are refused above; never resolve one, even while handling a failure.
    @property
    def success_callback(self):  # type: ignore[override]
        return None

    @property
    def failure_callback(self):  # type: ignore[override]
        return None

    @property
    def stopped_callback(self):  # type: ignore[override]
        return None


class ThugrqQueue(Queue):
    """A queue of thugrq jobs: JSON-serialized ThugrqJobs."""

    job_class = ThugrqJob

    def __init__(self, name: str = config.GENERIC_QUEUE, **kwargs: Any) -> None:
        # RQ passes these as None when it rebuilds queues (Queue.all): None is not a choice.
        for key, value in (("serializer", JSONSerializer), ("job_class", ThugrqJob)):
            if kwargs.get(key) is None:
                kwargs[key] = value
        super().__init__(name, **kwargs)

    # RQ pops with LPOP/BLPOP (several queues) or LMOVE/BLMOVE (one), then decodes the id and
    # reads its hash; an unreadable entry at any step would end the worker. Each step here
    # moves such an entry aside (thugrq.quarantine) and takes the next one instead.

    @classmethod
    def lpop(cls, queue_keys: Any, timeout: int | None, connection: Redis | None = None) -> Any:
        assert connection is not None
        pop = super(ThugrqQueue, cls).lpop
        return _readable_pop(connection, queue_keys, lambda: pop(queue_keys, timeout, connection=connection))

    @classmethod
    def lmove(cls, connection: Redis, queue_key: str, timeout: int | None) -> Any:
        keys = [queue_key, IntermediateQueue.get_intermediate_queue_key(queue_key)]
        pop = super(ThugrqQueue, cls).lmove
        return _readable_pop(connection, keys, lambda: pop(connection, queue_key, timeout))

    @classmethod
    def dequeue_any(cls, queues: Any, timeout: int | None, connection: Redis, *args: Any, **kwargs: Any) -> Any:
        """RQ's dequeue, except that a job hash RQ cannot read is failed as refused and the next
        job taken."""
        while True:
            try:
                return super().dequeue_any(queues, timeout, connection, *args, **kwargs)
            except Exception as error:  # noqa: BLE001 - RQ tags fetch errors with the job id
                job_id, queue = getattr(error, "job_id", None), getattr(error, "queue", None)
                if job_id is None or queue is None:
                    raise
                refuse_unreadable(queue, job_id, f"refused: job hash cannot be read ({type(error).__name__})")


def _readable_pop(connection: Redis, list_keys: list[str], pop: Callable[[], Any]) -> Any:
    """`pop()`'s (queue key, job id), after moving aside whatever unreadable entries, or list
    keys of another type, come first."""
    while True:
        try:
            result = pop()
        except ResponseError:
            if not quarantine.set_aside_wrong_types(connection, list_keys, "list"):
                raise
            continue
        if result is None or quarantine.readable(connection, *result):
            return result


def refuse_unreadable(queue: Queue, job_id: str, reason: str) -> None:
    """Mark a job whose hash RQ cannot read as failed, with `reason`, in its failed registry
    (a job key of another type is moved aside instead: there is no hash to mark)."""
    if not quarantine.readable(queue.connection, queue.key, job_id):
        return
    key = ThugrqJob.key_for(job_id)
    expires = time.time() + defaults.RESULT_TTL
    pipeline = queue.connection.pipeline()
    pipeline.hset(key, mapping={"status": "failed", REFUSAL_FIELD: reason})
    pipeline.expire(key, defaults.RESULT_TTL)
    pipeline.zadd(queue.failed_job_registry.key, {job_id: expires})
    pipeline.lrem(queue.intermediate_queue_key, 0, job_id)
    pipeline.execute()


def exception_line(traceback_text: str | None) -> str | None:
    """The last line of a traceback RQ stored: the exception and its message."""
    lines = [line.strip() for line in (traceback_text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def unreadable_reason(connection: Redis, job_id: str) -> str | None:
    """The refusal recorded by `refuse_unreadable`, if any."""
    reason = connection.hget(ThugrqJob.key_for(job_id), REFUSAL_FIELD)
    return reason.decode("utf-8", "replace") if reason else None
