"""thugrq's RQ queue and job classes, shared by submitters and workers.

Redis is the trust boundary, so a worker trusts nothing it dequeues: jobs are JSON (never
pickle), and a job naming any other function, an instance, or a callback is refused before
anything is imported. RQ by default would import and call any dotted name, even `eval`.
"""

from __future__ import annotations

from typing import Any

from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from thugrq import config, jobs


class RefusedJob(Exception):
    """A job that a thugrq worker will not run."""


class ThugrqJob(Job):
    """An RQ job that resolves to `thugrq.jobs.analyze` or refuses to run."""

    @property
    def func(self):  # type: ignore[override]
        refusal = self.refusal()
        if refusal:
            raise RefusedJob(refusal)
        return jobs.analyze

    def refusal(self) -> str | None:
        """Why this job must not run, or None when it is a well-formed analysis."""
        try:
            name, instance, args, kwargs = self.func_name, self.instance, self.args, self.kwargs
        except Exception as error:  # noqa: BLE001 - unreadable data is a refusal, not a crash
            return f"refused: job data cannot be read ({type(error).__name__})"
        if name != jobs.ANALYZE:
            return f"refused: job function {str(name)[:200]!r} is not {jobs.ANALYZE}"
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
        kwargs.setdefault("serializer", JSONSerializer)
        kwargs.setdefault("job_class", ThugrqJob)
        super().__init__(name, **kwargs)
