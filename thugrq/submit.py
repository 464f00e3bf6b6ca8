"""The client side: plan analyses and put them on queues, then follow them as a group.

`thugrq` (the CLI) is a thin layer over these functions, which scripts can import as well.
A `Plan` validates everything before anything is written, and its batch goes into Redis in one
MULTI/EXEC pipeline, so it is enqueued whole or not at all. What one job is and how it stands
is thugrq.job's.
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
from rq.group import Group

from thugrq import config, defaults, fleet, tally
from thugrq.compare import Analysis, Difference, compare
from thugrq.countries import country_code, queue_name
from thugrq.exceptions import InvalidInput, UnknownJob
from thugrq.job import JobState, Outcome, ThugrqJob, state
from thugrq.jobspec import JobSpec
from thugrq.options import Options, check_url
from thugrq.queue import ThugrqQueue
from thugrq.results import STATUS_COMPLETED

DEDUPE_PREFIX = "thugrq:dedupe:"


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


class Plan:
    """One enqueue, checked whole before anything is written: every URL x queue x option
    variant (one per personality), and the settings of its jobs (thugrq.jobspec), each
    against the bounds a worker enforces too (InvalidInput names the first one refused).

    A job's size in bytes is only known once it is built, so `enqueue` checks it then, still
    before anything is written: building every job twice would halve the batch's speed.
    """

    def __init__(
        self,
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
    ) -> None:
        base = options or Options()
        self.urls, self.queues = validate(urls, queues)
        self.variants = [
            dataclasses.replace(base, useragent=ua)
            for ua in dict.fromkeys(useragents or [base.useragent])
        ]
        self.spec = JobSpec(base.timeout, result_ttl, job_timeout, at_front, dedupe, retries)

    @property
    def size(self) -> int:
        """How many analyses the plan asks for (reused ones included)."""
        return len(self.urls) * len(self.queues) * len(self.variants)

    def unserved(self, connection: redis.Redis) -> list[str]:
        """The plan's country queues that no live worker serves: their jobs wait until one
        starts (a submitter should know before waiting for them)."""
        served = fleet.served_queues(connection)
        return [name for name in self.queues if name != config.GENERIC_QUEUE and name not in served]

    def enqueue(
        self, connection: redis.Redis, on_progress: Callable[[int], None] | None = None
    ) -> Submission:
        """Write the plan as one group: every new job, the group and the dedupe marks in one
        MULTI/EXEC pipeline, so the batch lands whole or not at all.

        With `dedupe` seconds, an identical analysis enqueued within that window is reused.
        A job whose work horse crashes, or whose worker dies, runs again up to `retries` times
        (failures that would recur, such as refused jobs, are never retried).
        """
        group = Group(connection, name=uuid.uuid4().hex)
        wanted = [(url, queue, opts) for queue in self.queues for opts in self.variants for url in self.urls]
        existing: dict[int, str] = {}
        if self.spec.dedupe:
            keys = [dedupe_key(*item) for item in wanted]
            for index, job_id in enumerate(connection.mget(keys)):
                if job_id and connection.exists(ThugrqJob.key_for(job_id.decode())):
                    existing[index] = job_id.decode()

        pipeline = connection.pipeline(transaction=True)
        created: dict[int, str] = {}
        chunk = len(self.urls)  # `wanted` runs queue by queue, personality by personality
        for start in range(0, len(wanted), chunk):
            queue, opts = wanted[start][1], wanted[start][2]
            indexes = [i for i in range(start, start + chunk) if i not in existing]
            if indexes:
                job_ids = ThugrqQueue(queue, connection=connection).add_jobs(
                    pipeline, [wanted[i][0] for i in indexes], opts, self.spec, group_id=group.name
                )
                created.update(zip(indexes, job_ids))
            if on_progress:
                on_progress(chunk)
        ids = {**existing, **created}
        pipeline.sadd(group.key, *ids.values())
        pipeline.sadd(Group.REDIS_GROUP_KEY, group.name)
        pipeline.expire(group.key, self.spec.result_ttl)
        tally.start(pipeline, group.name, tally.per_queue(q for _, q, _ in wanted), self.spec.result_ttl)
        if self.spec.dedupe:
            for index, job_id in created.items():
                pipeline.set(dedupe_key(*wanted[index]), job_id, ex=self.spec.dedupe)
        pipeline.execute()
        return Submission(
            group=group.name,
            jobs=[
                Submitted(ids[i], url, queue, opts.useragent, reused=i in existing)
                for i, (url, queue, opts) in enumerate(wanted)
            ],
        )


def enqueue(
    connection: redis.Redis,
    *args: Any,
    on_progress: Callable[[int], None] | None = None,
    **kwargs: Any,
) -> Submission:
    """`Plan(*args, **kwargs).enqueue(connection, on_progress)`: a script's one call."""
    return Plan(*args, **kwargs).enqueue(connection, on_progress)


def group_jobs(connection: redis.Redis, group_id: str) -> list[str]:
    """The ids of a group's jobs (those not yet expired), or UnknownJob."""
    members = connection.smembers(Group.get_key(group_id))
    if not members:
        raise UnknownJob(f"no group {group_id!r} in Redis (never created, or expired)")
    return sorted(member.decode() for member in members)


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
            if deadline and time.monotonic() >= deadline:
                break
            if job_id not in done:
                current = state(connection, job_id)
                if current.final:
                    done[job_id] = current
                    if on_progress:
                        on_progress(1)
        if len(done) == len(job_ids) or (deadline and time.monotonic() >= deadline):
            break
        time.sleep(interval if deadline is None else max(min(interval, deadline - time.monotonic()), 0))
    return [done.get(job_id) or state(connection, job_id) for job_id in job_ids]


def compare_outcomes(outcomes: Iterable[Outcome]) -> list[Difference]:
    """Where the finished analyses of the same URL disagree (see thugrq.compare)."""
    return compare(
        Analysis(o.url or "", o.seen_by, o.summary)
        for o in outcomes
        if o.summary is not None and o.status == STATUS_COMPLETED
    )

