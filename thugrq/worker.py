"""The thugrq worker: an RQ forking worker that runs `thugrq.analysis.analyze` and nothing else.

The refusal of any other job lives in `thugrq.job.ThugrqJob`; this module adds the worker
class, which imports Thug once before forking, and `run`, which starts it (`thugrq-worker`,
thugrq.cli.worker, is its command line).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any

from redis.exceptions import ResponseError
from rq import Queue, worker_registration
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import clean_registries
from rq.scheduler import RQScheduler
from rq.utils import now

from thugrq import analysis, config, fleet, location, quarantine, samples, warm
from thugrq.context import AnalysisContext
from thugrq.defaults import (
    FLEET_RECORD_TTL,
    HEARTBEAT_GRACE,
    JOB_MONITORING_INTERVAL,
    MAINTENANCE_INTERVAL,
    MAX_CONNECTION_WAIT,
    MAX_RETRIES,
    MIB,
    WORKER_TTL,
)
from thugrq.exceptions import InvalidInput, RefusedJob
from thugrq.fencing import FencingWorker
from thugrq.job import ThugrqJob, exception_line
from thugrq.limits import MEMORY_REASON, MemoryBound
from thugrq.outages import RidesOut
from thugrq.proxy import Proxy
from thugrq.queue import ThugrqQueue, thugrq_classes
from thugrq.targets import Policy

log = logging.getLogger("thugrq.worker")

#: Failures that will happen again on every run: never retried.
DETERMINISTIC_FAILURES = (
    f"{RefusedJob.__module__}.RefusedJob",
    f"{InvalidInput.__module__}.InvalidInput",
)
PR_SET_PDEATHSIG = 1
#: Where a job keeps the cause of its last failure (the last line of its traceback).
LAST_FAILURE = "thugrq_last_failure"


class WorkerCrashed(Exception):
    """The worker stopped on an unexpected error (RQ logs it and returns as if done)."""


def _records_crash(method: Callable[..., Any]) -> Callable[..., Any]:
    """Keep, on the worker, an unexpected error raised by a step of RQ's work loop: RQ's loop
    logs it and returns normally, and the worker must then exit non-zero, so that a
    supervisor restarts it."""

    @functools.wraps(method)
    def recording(self: ThugrqWorker, *args: Any, **kwargs: Any) -> Any:
        self.crash = None  # what an outer step retried after (Redis away: RQ waits) is none
        try:
            return method(self, *args, **kwargs)
        except StopRequested:
            raise
        except Exception as error:
            self.crash = error
            raise

    return recording


class ThugrqScheduler(RQScheduler):
    """RQ's scheduler (it re-queues retried jobs after their backoff), in a process that dies
    with its worker: RQ forks it, and a SIGKILLed worker would leave it running for good."""

    worker_pid: int | None = None

    def work(self) -> None:
        # SIGTERM, not SIGKILL: the scheduler then releases its queue locks as it stops, so
        # another worker's scheduler takes over at once instead of after the locks' 61 s TTL.
        _die_with_parent(self.worker_pid, signal.SIGTERM)
        super().work()


class ThugrqWorker(RidesOut, FencingWorker):
    """RQ's forking worker with thugrq's job and queue classes and the JSON serializer, whose
    attempts are fenced (thugrq.fencing).

    Beyond RQ it keeps its fleet record alive, ties each horse's and its scheduler's life to its
    own, retries only crashes, re-queues the job it drops on a cold shutdown, and records the result of an
    analysis stuck in JavaScript (see thugrq.deadline). Each analysis gets the worker's
    `context` (thugrq.context; a worker built without one gives the environment's), with the
    identity and location its `keeper` gives; a worker that located itself keeps its location
    true between jobs (thugrq.location).
    """

    queue_class = ThugrqQueue
    job_class = ThugrqJob
    max_connection_wait_time = MAX_CONNECTION_WAIT
    #: The memory limit of each horse (None: unbounded), and why the last horse died, if of it.
    memory: MemoryBound | None = None
    _memory_death: str | None = None
    _scheduler: RQScheduler | None = None
    #: The unexpected error that ended the work loop, if one did.
    crash: Exception | None = None

    def __init__(
        self,
        queues: list[str],
        *args: Any,
        keeper: location.Keeper | None = None,
        context: AnalysisContext | None = None,
        **kwargs: Any,
    ) -> None:
        # Set before RQ's __init__, which reads dequeue_timeout.
        self.keeper = keeper or location.Keeper.given(None)
        kwargs = thugrq_classes(kwargs, "serializer", "job_class", "queue_class")
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        kwargs.setdefault("job_monitoring_interval", JOB_MONITORING_INTERVAL)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        super().__init__(queues, *args, **kwargs)
        self.context = context or AnalysisContext()
        self.started = fleet.now()

    @property
    def dequeue_timeout(self) -> int:
        # An idle worker wakes from its blocking dequeue in time to re-check its location.
        return self.keeper.wait_limit(super().dequeue_timeout)

    @property
    def scheduler(self) -> RQScheduler | None:
        return self._scheduler

    @scheduler.setter
    def scheduler(self, value: RQScheduler | None) -> None:
        # RQ builds a plain RQScheduler; make it one that dies with this worker.
        if value is not None and type(value) is RQScheduler:
            value.__class__ = ThugrqScheduler
            value.worker_pid = os.getpid()
        self._scheduler = value

    def clean_registries(self) -> None:
        """RQ's registry cleaning, except that unreadable entries are moved aside (see
        thugrq.quarantine) and the cleaning tried again: in RQ the first one would end the
        worker, leaving the queue's cleaning lock held for 15 minutes."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                try:
                    self._clean(queue)
                finally:
                    queue.release_maintenance_lock()
        self.last_cleaned_at = now()

    def _clean(self, queue: Queue) -> None:
        for attempt in (1, 2):
            try:
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                queue.intermediate_queue.cleanup(self, queue)
                return
            except (ResponseError, ValueError) as error:  # wrong types, undecodable ids
                moved = quarantine.sweep(queue) if attempt == 1 else 0
                log.warning(
                    "cleaning queue %s failed (%s): %d unreadable entries moved aside "
                    "(thugrq quarantine lists them)", queue.name, error, moved,
                )
                if not moved:
                    return

    @_records_crash
    def check_for_suspension(self, *args: Any, **kwargs: Any) -> None:
        super().check_for_suspension(*args, **kwargs)

    @_records_crash
    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()

    @_records_crash
    def dequeue_job_and_maintain_ttl(self, *args: Any, **kwargs: Any) -> Any:
        return super().dequeue_job_and_maintain_ttl(*args, **kwargs)

    @_records_crash
    def execute_job(self, job: Job, queue: Queue) -> None:
        if not self.keeper.may_start(queue.name):
            location.reconnect_if_moved(self, self.keeper)
            location.put_back(job, queue, self.keeper.country)
            return
        super().execute_job(job, queue)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        # RQ adds 60 s; a shorter grace lets another worker notice an abandoned job sooner.
        return super().get_heartbeat_ttl(job, working_time) - 60 + HEARTBEAT_GRACE

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        # RQ puts the horse in its own process group, so a SIGKILLed worker would leave it
        # running while the job is re-queued elsewhere: the job would run twice.
        _die_with_parent(self.pid)
        if self.memory:
            self.memory.bound_horse()
        super().main_work_horse(job, queue)

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        def overrun(document: dict[str, Any]) -> None:
            self._finalize_success(job, queue, execution, document)
            os._exit(0)

        assert isinstance(job, ThugrqJob)
        identity = self.keeper.identity(self.name)  # where the worker stands as the job starts
        job.context = self.context.for_job(identity, overrun, job.result_ttl)  # in the horse
        return super().perform_job(job, queue, execution)

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        # RQ calls this, then handle_job_failure, when a horse dies before recording its job.
        self._memory_death = self.memory.death_reason() if self.memory else None
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)

    def handle_job_failure(
        self,
        job: Job,
        queue: Queue,
        started_job_registry: Any = None,
        exc_string: str = "",
        execution: Execution | None = None,
    ) -> None:
        """Retry only what may go otherwise next time: not a refusal, not the memory limit (the
        reason then says so), not a failure with the same cause as the job's previous one."""
        memory, self._memory_death = self._memory_death, None
        cause = exception_line(exc_string) or ""
        if memory or cause.startswith("MemoryError"):
            exc_string = f"{exc_string.rstrip()}\n{memory or f'{MEMORY_REASON} ({cause})'}"
        if memory or cause.startswith(DETERMINISTIC_FAILURES) or cause == job.meta.get(LAST_FAILURE):
            job.retries_left = None
        elif job.retries_left:
            job.retries_left = min(job.retries_left, MAX_RETRIES)
            job.meta[LAST_FAILURE] = cause  # read by the next run's failure, if there is one
            job.save_meta()
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Cold shutdown (a second SIGTERM): stop at once, but put the current job back first."""
        job, execution = self.get_current_job(), self.execution
        if self.horse_pid and job is not None and execution is not None:
            self.kill_horse()
            self.wait_for_horse()
            self._horse_pid = 0
            with self.connection.pipeline() as pipeline:
                self.cleanup_execution(job, pipeline=pipeline, execution=execution)
                job.set_status(JobStatus.QUEUED, pipeline=pipeline)
                pipeline.execute()
            self.queue_class(job.origin, connection=self.connection).enqueue_job(job, at_front=True)
            log.warning("cold shutdown: job %s put back at the front of %s", job.id, job.origin)
        super().request_force_stop(signum, frame)

    def register_birth(self) -> None:
        super().register_birth()
        self.register_in_fleet()

    def register_in_fleet(self) -> None:
        record = fleet.WorkerRecord(
            name=self.name,
            country=self.keeper.country,
            asn=self.keeper.asn,
            as_name=self.keeper.as_name,
            thug=analysis.thug_versions()["version"],
            queues=self.queue_names(),
            started=self.started,
            last_seen=fleet.now(),
            address=self.keeper.address,
            proxy=str(self.context.proxy) if self.context.proxy else None,
        )
        fleet.register(self.connection, record, ttl=FLEET_RECORD_TTL)

    @_records_crash
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if timeout is None and pipeline is None and not self.horse_pid:  # idle, between jobs
            location.keep(self, self.keeper)
        super().heartbeat(timeout, pipeline=pipeline)
        if not fleet.touch(self.connection, self.name, FLEET_RECORD_TTL):  # lapsed while cut off
            self.register_in_fleet()

    def register_death(self) -> None:
        fleet.unregister(self.connection, self.name)
        super().register_death()


def _die_with_parent(parent: int | None, sig: signal.Signals = signal.SIGKILL) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux); exit if the
    parent is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):  # not Linux: nothing to tie
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def default_name(country: str | None) -> str:
    """`IT.host.pid`: the country first, so the dashboard shows where a worker stands."""
    return f"{country or config.GENERIC_QUEUE}.{socket.gethostname()}.{os.getpid()}"


def run(
    queues: list[str],
    *,
    keeper: location.Keeper,
    policy: Policy,
    max_result_bytes: int,
    redis_url: str | None = None,
    burst: bool = False,
    name: str | None = None,
    max_memory: int | None = None,
    proxy: Proxy | None = None,
    max_sample_bytes: int = samples.DEFAULT_MAX_SAMPLE_BYTES,
    warm_up: bool = True,
) -> bool:
    """Serve `queues` in order of priority; returns whether any job was processed."""
    connection = config.connect(redis_url, block=keeper.wait_limit(WORKER_TTL - 15))  # its dequeue
    versions = warm.prepare() if warm_up else analysis.thug_versions()  # before any fork
    name = name or default_name(keeper.country)
    store = samples.Store(connection, max_sample_bytes)  # each job's horse keeps its samples there
    context = AnalysisContext(policy=policy, max_result_bytes=max_result_bytes, proxy=proxy, samples=store)
    worker = ThugrqWorker(queues, connection=connection, name=name, keeper=keeper, context=context)
    worker.memory = MemoryBound(max_memory) if max_memory else None
    log.info("thugrq worker %s: Thug %s (%s %s), queues %s", worker.name, versions["version"],
             versions["jsengine"], versions["jsengine_version"], ", ".join(queues))
    log.info("targets: %s; fetched %s", policy.describe(), f"through {proxy}" if proxy else "directly")
    log.info("memory: %s", f"at most {max_memory // MIB} MiB a horse" if max_memory else "unbounded")
    log.info("results: at most %s bytes each; samples up to %s", max_result_bytes, max_sample_bytes)
    worked = worker.work(burst=burst, logging_level="INFO", with_scheduler=True)
    if worker.crash is not None:
        raise WorkerCrashed(
            f"worker {worker.name} stopped on an unexpected error: "
            f"{type(worker.crash).__name__}: {worker.crash}"
        )
    return worked
