"""What one enqueue asks of its jobs besides the analysis: how long each may run and is kept,
how often it is retried, how long it is reused for.

A worker refuses a job hash whose fields are out of bounds (thugrq.jobhash), so the library
checks the same bounds (thugrq.defaults) before anything is written: otherwise a script's
`retries=10` would enqueue jobs that every worker then refuses as malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rq.job import Job, Retry

from thugrq import defaults
from thugrq.exceptions import InvalidInput
from thugrq.options import shown, whole_number


@dataclass(frozen=True)
class JobSpec:
    """The checked settings of one enqueue's jobs; InvalidInput names the first one refused."""

    #: The analysis timeout of the options (already checked by thugrq.options).
    analysis_timeout: int
    result_ttl: int = defaults.RESULT_TTL
    #: None: the analysis timeout plus defaults.JOB_TIMEOUT_MARGIN.
    job_timeout: int | None = None
    at_front: bool = False
    #: Seconds an identical analysis is reused for; 0: never.
    dedupe: int = 0
    retries: int = defaults.DEFAULT_RETRIES

    def __post_init__(self) -> None:
        ttl = whole_number(defaults.MIN_RESULT_TTL, defaults.MAX_RESULT_TTL)
        ttl("result_ttl", self.result_ttl)
        if self.job_timeout is not None:
            whole_number(1, defaults.MAX_JOB_TIMEOUT)("job_timeout", self.job_timeout)
        whole_number(0, defaults.MAX_DEDUPE)("dedupe", self.dedupe)
        whole_number(0, defaults.MAX_RETRIES)("retries", self.retries)
        if not isinstance(self.at_front, bool):
            raise InvalidInput(f"invalid at_front {self.at_front!r}: expected true or false")
        if self.timeout <= self.analysis_timeout:
            raise InvalidInput(
                f"invalid job timeout {self.timeout}: it must be longer than the analysis "
                f"timeout ({self.analysis_timeout} s), or Thug could not report a timeout"
            )

    @property
    def timeout(self) -> int:
        """RQ's job timeout, after which the worker kills the horse."""
        if self.job_timeout is None:
            return self.analysis_timeout + defaults.JOB_TIMEOUT_MARGIN
        return self.job_timeout

    @property
    def retry(self) -> Retry | None:
        """RQ's retry of a job whose horse crashed or whose worker died, if any."""
        return Retry(max=self.retries, interval=defaults.RETRY_INTERVALS) if self.retries else None


def check_size(job: Job, url: str) -> None:
    """Refuse a job whose description or data is larger than a worker reads: both carry the URL,
    which thugrq.options bounds in characters, not in the bytes they take."""
    try:
        description = len(job.description.encode("utf-8"))
    except UnicodeEncodeError as error:
        raise InvalidInput(f"invalid URL {shown(url)!r}: it is not valid Unicode text") from error
    if description > defaults.MAX_JOB_TEXT:
        raise InvalidInput(
            f"invalid URL {shown(url)!r}: it takes {description} bytes in the job's description, "
            f"more than the {defaults.MAX_JOB_TEXT} a worker reads; shorten it"
        )
    if len(job.data) > defaults.MAX_JOB_DATA:
        raise InvalidInput(
            f"invalid URL {shown(url)!r}: with its options it makes {len(job.data)} bytes of job "
            f"data, more than the {defaults.MAX_JOB_DATA} a worker reads; shorten the URL or "
            "the referer"
        )
