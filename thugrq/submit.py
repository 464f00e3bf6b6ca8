"""The client side: put analyses on queues, follow them, read their results.

`thugrq` (cli.py) is a thin layer over these functions, which scripts can import as well.
Everything is validated before anything is written, and a batch goes into Redis in one
MULTI/EXEC pipeline, so it is enqueued whole or not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer

from thugrq import config, jobs
from thugrq.countries import queue_name
from thugrq.options import Options, check_url
from thugrq.queue import ThugrqJob, ThugrqQueue

FINAL_STATES = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
)


class UnknownJob(LookupError):
    """No such job in Redis (never enqueued, or expired)."""


@dataclass(frozen=True)
class JobState:
    """Where a job stands, and for a job that did not finish, why."""

    id: str
    status: str
    queue: str | None
    url: str | None
    useragent: str | None
    reason: str | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES


def enqueue(
    connection: redis.Redis,
    urls: Iterable[str],
    queues: Sequence[str] = (config.GENERIC_QUEUE,),
    options: Options | None = None,
    result_ttl: int = config.RESULT_TTL,
) -> list[ThugrqJob]:
    """Enqueue one analysis per URL and queue; validates all input first (InvalidInput)."""
    options = options or Options()
    checked_urls, queue_names = validate(urls, queues)
    arguments = options.to_dict()
    pipeline = connection.pipeline(transaction=True)
    enqueued: list[ThugrqJob] = []
    for name in queue_names:
        queue = ThugrqQueue(name, connection=connection)
        enqueued += queue.enqueue_many(
            [
                Queue.prepare_data(
                    jobs.ANALYZE,
                    args=(url, arguments),
                    timeout=options.timeout + config.JOB_TIMEOUT_MARGIN,
                    result_ttl=result_ttl,
                    failure_ttl=result_ttl,
                    description=f"thug {url} as {options.useragent} from {name}",
                )
                for url in checked_urls
            ],
            pipeline=pipeline,
        )
    pipeline.execute()
    return enqueued


def validate(urls: Iterable[str], queues: Iterable[str]) -> tuple[list[str], list[str]]:
    """Checked URLs and queue names (duplicates dropped), or InvalidInput for the first bad one."""
    return [check_url(url) for url in urls], list(dict.fromkeys(queue_name(q) for q in queues))


def fetch(connection: redis.Redis, job_id: str) -> ThugrqJob:
    """The job with this id, or UnknownJob."""
    try:
        return ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError as error:
        raise UnknownJob(f"no job {job_id!r} in Redis (never enqueued, or expired)") from error


def state(connection: redis.Redis, job_id: str) -> JobState:
    """The status of a job, with the reason when it failed or stopped."""
    job = fetch(connection, job_id)
    status = job.get_status(refresh=True)
    args = _safe_args(job)
    reason = None
    if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        reason = failure_reason(job) or status.value
    return JobState(
        id=job.id,
        status=status.value if status else "unknown",
        queue=job.origin,
        url=args[0],
        useragent=args[1],
        reason=reason,
    )


def failure_reason(job: ThugrqJob) -> str | None:
    """The last line of the failure's traceback: the exception and its message."""
    result = job.latest_result()
    text = (result.exc_string if result else None) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


def result(connection: redis.Redis, job_id: str) -> tuple[JobState, dict[str, Any] | None]:
    """The job's state and, for a finished job, its result document."""
    current = state(connection, job_id)
    if current.status != JobStatus.FINISHED:
        return current, None
    return current, fetch(connection, job_id).return_value()


def wait(
    connection: redis.Redis,
    job_ids: Sequence[str],
    timeout: float | None = None,
    interval: float = 0.5,
    on_progress: Callable[[int], None] | None = None,
) -> list[JobState]:
    """Poll until every job is in a final state (or `timeout` seconds pass); their states."""
    deadline = None if timeout is None else time.monotonic() + timeout
    done: dict[str, JobState] = {}
    while True:
        for job_id in job_ids:
            if job_id not in done:
                current = state(connection, job_id)
                if current.final:
                    done[job_id] = current
                    if on_progress:
                        on_progress(1)
        if len(done) == len(job_ids) or (deadline and time.monotonic() >= deadline):
            break
        time.sleep(interval)
    return [done.get(job_id) or state(connection, job_id) for job_id in job_ids]


def _safe_args(job: ThugrqJob) -> tuple[str | None, str | None]:
    """URL and user agent of a job, without trusting the shape of its data."""
    try:
        url, options = job.args
        return str(url), str(options.get("useragent"))
    except Exception:  # noqa: BLE001 - a hostile job still gets a status line
        return None, None
