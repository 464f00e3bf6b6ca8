"""The client side: put analyses on queues, follow them, read their results.

`thugrq` (cli.py) is a thin layer over these functions, which scripts can import as well.
Everything is validated before anything is written, and a batch goes into Redis in one
MULTI/EXEC pipeline, so it is enqueued whole or not at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.group import Group
from rq.job import JobStatus
from rq.serializers import JSONSerializer
from rq.utils import now

from thugrq import config, defaults
from thugrq.compare import Analysis, Difference, compare
from thugrq.results import STATUS_COMPLETED
from thugrq.analysis import ANALYZE
from thugrq.countries import country_code, queue_name
from thugrq.exceptions import InvalidInput, UnknownJob
from thugrq.jobspec import JobSpec, check_size
from thugrq.options import Options, check_url
from thugrq.queue import ThugrqJob, ThugrqQueue, exception_line, unreadable_reason

DEDUPE_PREFIX = "thugrq:dedupe:"
#: Most job ids pushed onto a queue by one command.
PUSH_CHUNK = 10_000

FINAL_STATES = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
)


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


@dataclass(frozen=True)
class Submitted:
    """One enqueued analysis: one URL on one queue as one personality."""

    id: str
    url: str
    queue: str
    useragent: str
    #: True when --dedupe found the same analysis enqueued within the window.
    reused: bool = False


@dataclass(frozen=True)
class Submission:
    """What one `enqueue` call created: a group of jobs."""

    group: str
    jobs: list[Submitted]


def read_urls(lines: Iterable[str], source: str) -> list[str]:
    """The URLs of a URL file (blank lines and # comments skipped); InvalidInput names the line."""
    urls = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            urls.append(check_url(text))
        except InvalidInput as error:
            raise InvalidInput(f"{source} line {number}: {error}") from error
    return urls


def read_countries(lines: Iterable[str], source: str) -> list[str]:
    """The country queues of a country file, one code or name a line, like a URL file."""
    codes = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if text and not text.startswith("#"):
            try:
                codes.append(country_code(text))
            except InvalidInput as error:
                raise InvalidInput(f"{source} line {number}: {error}") from error
    return codes


def validate(urls: Iterable[str], queues: Iterable[str]) -> tuple[list[str], list[str]]:
    """Checked URLs and queue names (duplicates dropped), or InvalidInput for the first bad one."""
    checked = [check_url(url) for url in urls]
    names = list(dict.fromkeys(queue_name(q) for q in queues))
    if not checked:
        raise InvalidInput("no URL given: name URLs as arguments or in --url-file")
    if not names:
        raise InvalidInput("no queue given")
    return checked, names


def dedupe_key(url: str, queue: str, options: Options) -> str:
    identity = json.dumps([url, queue, options.to_dict()], sort_keys=True)
    return DEDUPE_PREFIX + hashlib.sha256(identity.encode()).hexdigest()


def enqueue(
    connection: redis.Redis,
    urls: Iterable[str],
    queues: Sequence[str] = (config.GENERIC_QUEUE,),
    options: Options | None = None,
    useragents: Sequence[str] | None = None,
    *,
    result_ttl: int = defaults.RESULT_TTL,
    job_timeout: int | None = None,
    at_front: bool = False,
    dedupe: int = 0,
    retries: int = defaults.DEFAULT_RETRIES,
    on_progress: Callable[[int], None] | None = None,
) -> Submission:
    """Enqueue one analysis per URL x queue x personality, as one group.

    All input is validated first, against the bounds a worker enforces too (InvalidInput);
    then every new job, the group and the dedupe marks go to Redis in one MULTI/EXEC pipeline,
    so the batch lands whole or not at all.
    With `dedupe` seconds, an identical analysis enqueued within that window is reused.
    A job whose work horse crashes, or whose worker dies, runs again up to `retries` times
    (failures that would recur, such as refused jobs, are never retried).
    """
    base = options or Options()
    checked_urls, queue_names = validate(urls, queues)
    variants = [dataclasses.replace(base, useragent=ua) for ua in dict.fromkeys(useragents or [base.useragent])]
    spec = JobSpec(base.timeout, result_ttl, job_timeout, at_front, dedupe, retries)
    group = Group(connection, name=uuid.uuid4().hex)
    wanted = [(url, queue, opts) for queue in queue_names for opts in variants for url in checked_urls]
    existing: dict[int, str] = {}
    if dedupe:
        keys = [dedupe_key(*item) for item in wanted]
        for index, job_id in enumerate(connection.mget(keys)):
            if job_id and connection.exists(ThugrqJob.key_for(job_id.decode())):
                existing[index] = job_id.decode()

    pipeline = connection.pipeline(transaction=True)
    created: dict[int, str] = {}
    chunk = len(checked_urls)  # `wanted` runs queue by queue, personality by personality
    for start in range(0, len(wanted), chunk):
        queue, opts = wanted[start][1], wanted[start][2]
        indexes = [i for i in range(start, start + chunk) if i not in existing]
        if indexes:
            job_ids = _add_jobs(
                pipeline,
                ThugrqQueue(queue, connection=connection),
                [wanted[i][0] for i in indexes],
                opts,
                spec,
                group_id=group.name,
            )
            created.update(zip(indexes, job_ids))
        if on_progress:
            on_progress(chunk)
    ids = {**existing, **created}
    pipeline.sadd(group.key, *ids.values())
    pipeline.sadd(Group.REDIS_GROUP_KEY, group.name)
    pipeline.expire(group.key, result_ttl)
    if dedupe:
        for index, job_id in created.items():
            pipeline.set(dedupe_key(*wanted[index]), job_id, ex=dedupe)
    pipeline.execute()
    return Submission(
        group=group.name,
        jobs=[
            Submitted(ids[i], url, queue, opts.useragent, reused=i in existing)
            for i, (url, queue, opts) in enumerate(wanted)
        ],
    )


def _add_jobs(
    pipeline: redis.client.Pipeline,
    queue: ThugrqQueue,
    urls: list[str],
    options: Options,
    spec: JobSpec,
    *,
    group_id: str,
) -> list[str]:
    """Put one analysis job per URL on `queue`, in `pipeline`; their ids, in order.

    The jobs are RQ's own (Queue.create_job, stored as Job.to_dict gives them), but each is
    written with one HSET and all their ids are pushed at once: RQ's enqueue_many spends four
    commands on every job, which made a batch only three times faster than one-by-one.
    """
    arguments = options.to_dict()
    enqueued_at = now()
    retry = spec.retry
    ids = []
    for url in urls:
        job = queue.create_job(
            ANALYZE,
            args=(url, arguments),
            timeout=spec.timeout,
            result_ttl=spec.result_ttl,
            failure_ttl=spec.result_ttl,
            description=f"thug {url} as {options.useragent} from {queue.name}",
            retry=retry,
            group_id=group_id,
            status=JobStatus.QUEUED,
        )
        check_size(job, url)
        job.enqueued_at = enqueued_at
        # RQ writes unset fields as empty strings and reads a missing field the same way.
        pipeline.hset(job.key, mapping={k: v for k, v in job.to_dict().items() if v != ""})
        ids.append(job.id)
    pipeline.sadd(queue.redis_queues_keys, queue.key)
    for first in range(0, len(ids), PUSH_CHUNK):
        chunk = ids[first : first + PUSH_CHUNK]
        if spec.at_front:  # LPUSH puts its last argument first: reverse to keep the batch's order
            pipeline.lpush(queue.key, *reversed(chunk))
        else:
            pipeline.rpush(queue.key, *chunk)
    return ids


def group_jobs(connection: redis.Redis, group_id: str) -> list[str]:
    """The ids of a group's jobs (those not yet expired), or UnknownJob."""
    members = connection.smembers(Group.get_key(group_id))
    if not members:
        raise UnknownJob(f"no group {group_id!r} in Redis (never created, or expired)")
    return sorted(member.decode() for member in members)


def fetch(connection: redis.Redis, job_id: str) -> ThugrqJob:
    """The job with this id, or UnknownJob."""
    try:
        return ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError as error:
        raise UnknownJob(f"no job {job_id!r} in Redis (never enqueued, or expired)") from error


def state(connection: redis.Redis, job_id: str) -> JobState:
    """The status of a job, with the reason when it failed or stopped."""
    try:
        job = fetch(connection, job_id)
    except UnknownJob:
        raise
    except Exception:  # noqa: BLE001 - a hash RQ cannot read, written by someone hostile
        raw = connection.hgetall(ThugrqJob.key_for(job_id))
        return JobState(
            id=job_id,
            status=raw.get(b"status", b"unknown").decode("utf-8", "replace"),
            queue=raw.get(b"origin", b"").decode("utf-8", "replace") or None,
            url=None,
            useragent=None,
            reason=unreadable_reason(connection, job_id) or "job hash cannot be read",
        )
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
    return exception_line(result.exc_string if result else None)


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


@dataclass(frozen=True)
class Outcome:
    """How a job ended (or where it stands), with the headline facts of its result."""

    id: str
    url: str | None
    queue: str | None
    useragent: str | None
    #: The analysis status (completed, timeout, error) once finished, else the job's status.
    status: str
    reason: str | None
    final_url: str | None
    exploits: int
    samples: int
    summary: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_COMPLETED

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        del row["summary"]
        return row


def outcome(connection: redis.Redis, job_id: str) -> Outcome:
    current, document = result(connection, job_id)
    document = document or {}
    summary = document.get("summary") or {}
    return Outcome(
        id=current.id,
        url=current.url,
        queue=current.queue,
        useragent=current.useragent,
        status=document.get("status") or current.status,
        reason=current.reason or document.get("error"),
        final_url=summary.get("final_url"),
        exploits=len(summary.get("exploits") or []),
        samples=len(summary.get("samples") or []),
        summary=summary or None,
    )


def compare_outcomes(outcomes: Iterable[Outcome]) -> list[Difference]:
    """Where the finished analyses of the same URL disagree (see thugrq.compare)."""
    return compare(
        Analysis(o.url or "", f"{o.queue}/{o.useragent}", o.summary)
        for o in outcomes
        if o.summary is not None and o.status == STATUS_COMPLETED
    )


def _safe_args(job: ThugrqJob) -> tuple[str | None, str | None]:
    """URL and user agent of a job, without trusting the shape of its data."""
    try:
        url, options = job.args
        return str(url), str(options.get("useragent"))
    except Exception:  # noqa: BLE001 - a hostile job still gets a status line
        return None, None
