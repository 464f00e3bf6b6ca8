"""The job: thugrq's RQ job class, and what a reader learns of one job (its state, why it
failed, its outcome).

Redis is the trust boundary, so a worker trusts nothing it dequeues: jobs are JSON (never
pickle), and a job naming any other function, an instance, or a callback is refused before
anything is imported. RQ by default would import and call any dotted name, even `eval`.
Each field of the hash is checked first by thugrq.jobhash, this module's helper.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from thugrq import analysis, jobhash
from thugrq.config import GENERIC_QUEUE
from thugrq.context import AnalysisContext
from thugrq.exceptions import RefusedJob, UnknownJob
from thugrq.results import STATUS_COMPLETED, analysed_from

#: Where the reason goes when a job hash cannot be read at all (see thugrq.queue).
REFUSAL_FIELD = "thugrq_refusal"

FINAL_STATES = frozenset(
    {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}
)


class ThugrqJob(Job):
    """An RQ job that resolves to `thugrq.analysis.analyze` or refuses to run."""

    #: Why the hash this job was read from is refused (see thugrq.jobhash), if it is.
    _hash_refusal: str | None = None
    #: The context the worker running this job gives its analysis (None: the environment's).
    context: AnalysisContext | None = None
    #: Set, in memory only, when a worker's cleaning finds the job abandoned (thugrq.outages).
    abandoned = False

    def get_retry_interval(self) -> int:
        # A job whose worker was lost is queued again at once: the backoff is for crashes, and
        # would wait for a scheduler whose lock the lost host may hold for another minute.
        return 0 if self.abandoned else super().get_retry_interval()

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


def exception_line(traceback_text: str | None) -> str | None:
    """The last line of a traceback RQ stored: the exception and its message."""
    lines = [line.strip() for line in (traceback_text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None


def unreadable_reason(connection: redis.Redis, job_id: str) -> str | None:
    """The refusal recorded by `thugrq.queue.refuse_unreadable`, if any."""
    reason = connection.hget(ThugrqJob.key_for(job_id), REFUSAL_FIELD)
    return reason.decode("utf-8", "replace") if reason else None


def result(connection: redis.Redis, job_id: str) -> tuple[JobState, dict[str, Any] | None]:
    """The job's state and, for a finished job, its result document."""
    current = state(connection, job_id)
    if current.status != JobStatus.FINISHED:
        return current, None
    return current, fetch(connection, job_id).return_value()


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
    #: The country the analysis was made from (see results.analysed_from), once finished.
    analysed_from: str | None = None
    summary: dict[str, Any] | None = dataclasses.field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == STATUS_COMPLETED

    @property
    def seen_by(self) -> str:
        """Who made the analysis, as comparisons name it (thugrq.compare): `IT/winxpie60`."""
        return f"{self.queue}/{self.useragent}"

    @property
    def misplaced(self) -> bool:
        """A country job analysed from another country, or from nowhere verified: the promise
        that a job on queue IT is analysed from Italy was not kept."""
        country_job = self.queue not in (None, GENERIC_QUEUE)
        return self.summary is not None and country_job and self.analysed_from != self.queue

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        del row["summary"]
        return {**row, "misplaced": self.misplaced}


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
        analysed_from=analysed_from(document) if document else None,
        summary=summary or None,
    )


def _safe_args(job: ThugrqJob) -> tuple[str | None, str | None]:
    """URL and user agent of a job, without trusting the shape of its data."""
    try:
        url, options = job.args
        return str(url), str(options.get("useragent"))
    except Exception:  # noqa: BLE001 - a hostile job still gets a status line
        return None, None
