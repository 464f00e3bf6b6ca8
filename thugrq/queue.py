"""thugrq's RQ queue, shared by submitters and workers: its batch write, and its reads that
survive whatever was pushed onto it.

Jobs on it are thugrq.job.ThugrqJobs, JSON-serialized (never pickle).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError
from rq import Queue
from rq.intermediate_queue import IntermediateQueue
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from thugrq import config, defaults, quarantine
from thugrq.analysis import ANALYZE
from thugrq.job import REFUSAL_FIELD, ThugrqJob
from thugrq.jobspec import JobSpec, check_size
from thugrq.options import Options

#: Most job ids pushed onto a queue by one command.
PUSH_CHUNK = 10_000


def thugrq_classes(kwargs: dict[str, Any], *names: str) -> dict[str, Any]:
    """`kwargs` for an RQ queue or worker, with thugrq's JSON serializer (never pickle) and its
    job and queue classes wherever the `names` given are missing or None: RQ passes None when it
    rebuilds queues and workers (`Queue.all`, `Worker.all`), and would then fall back to pickle
    and to jobs that run any function they name."""
    classes = {"serializer": JSONSerializer, "job_class": ThugrqJob, "queue_class": ThugrqQueue}
    return {**kwargs, **{name: classes[name] for name in names if kwargs.get(name) is None}}


class ThugrqQueue(Queue):
    """A queue of thugrq jobs: JSON-serialized ThugrqJobs."""

    job_class = ThugrqJob

    def __init__(self, name: str = config.GENERIC_QUEUE, **kwargs: Any) -> None:
        super().__init__(name, **thugrq_classes(kwargs, "serializer", "job_class"))

    def add_jobs(
        self, pipeline: Pipeline, urls: list[str], options: Options, spec: JobSpec, *, group_id: str
    ) -> list[str]:
        """Put one analysis job per URL on this queue, in `pipeline`; their ids, in order.

        The jobs are RQ's own (Queue.create_job, stored as Job.to_dict gives them), but each is
        written with one HSET and all their ids are pushed at once: RQ's enqueue_many spends
        four commands on every job, which made a batch only three times faster than one-by-one.
        """
        arguments = options.to_dict()
        enqueued_at = now()
        retry = spec.retry
        ids = []
        for url in urls:
            job = self.create_job(
                ANALYZE,
                args=(url, arguments),
                timeout=spec.timeout,
                result_ttl=spec.result_ttl,
                failure_ttl=spec.result_ttl,
                description=f"thug {url} as {options.useragent} from {self.name}",
                retry=retry,
                group_id=group_id,
                status=JobStatus.QUEUED,
            )
            check_size(job, url)
            job.enqueued_at = enqueued_at
            # RQ writes unset fields as empty strings and reads a missing field the same way.
            pipeline.hset(job.key, mapping={k: v for k, v in job.to_dict().items() if v != ""})
            ids.append(job.id)
        pipeline.sadd(self.redis_queues_keys, self.key)
        for first in range(0, len(ids), PUSH_CHUNK):
            chunk = ids[first : first + PUSH_CHUNK]
            if spec.at_front:  # LPUSH puts its last argument first: reverse to keep the order
                pipeline.lpush(self.key, *reversed(chunk))
            else:
                pipeline.rpush(self.key, *chunk)
        return ids

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

