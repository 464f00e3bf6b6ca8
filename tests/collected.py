"""Finished jobs without Thug, and their collection: the jobs are enqueued as a submitter
does and their outcome is recorded by the worker's own success and failure paths
(ThugrqWorker.handle_job_success/_failure, fenced and counted like a real analysis), with result
documents naming samples stored in Redis; then collected into a store (thugrq.collector) and
expired from Redis as their TTLs would. Shared by the tests of the collector and of the commands
that read its store."""

from __future__ import annotations

from pathlib import Path

from rq.results import Result
from rq.utils import now

from thugrq import collector, fencing, samples, submit
from thugrq.job import ThugrqJob
from thugrq.queue import ThugrqQueue
from thugrq.store import Store
from thugrq.worker import ThugrqWorker

KEEP = 600
REFUSAL = "thugrq.exceptions.RefusedJob: refused: job function 'eval' is not analyze"


def payload(index: int) -> bytes:
    return f"MZ sample {index} ".encode() * 50


def finish(connection, count: int, failed: int = 0, padding: int = 200) -> submit.Submission:
    """Enqueue `count` jobs (rounded up: half as many URLs, each on generic and IT) and end them
    through the worker's outcome paths:
    the last `failed` fail as refused, the others complete, each downloading one of 3 samples
    (stored in Redis as a worker does)."""
    urls = [f"http://h{i}.test/" for i in range((count + 1) // 2)]
    submission = submit.enqueue(connection, urls, ["generic", "IT"])
    worker = ThugrqWorker(["IT", "generic"], connection=connection, name="simulated")
    queues = [ThugrqQueue(name, connection=connection) for name in ("generic", "IT")]  # as enqueued
    for index in range(len(submission.jobs)):
        job, queue = ThugrqQueue.dequeue_any(
            queues, None, connection=connection, job_class=worker.job_class, serializer=worker.serializer
        )
        execution = worker.prepare_execution(job)
        job.started_at = job.ended_at = now()
        if index >= len(submission.jobs) - failed:
            worker.handle_job_failure(job, queue, job.started_job_registry, f"Traceback\n{REFUSAL}\n", execution)
            continue
        data = payload(index % 3)
        digest = samples.put(connection, data, 3600)
        job._result = {
            "schema": "thugrq.result/1", "status": "completed", "url": job.args[0],
            "log": "x" * padding,
            "summary": {"final_url": job.args[0], "samples": [
                {"sha256": digest, "size": len(data), "kept": True, "type": "PE",
                 "url": f"{job.args[0]}payload.exe"}]},
        }
        worker.handle_job_success(job, queue, job.started_job_registry, execution)
    return submission



def expire(connection, job_id: str) -> None:
    """What Redis does when a collected job's TTL runs out."""
    connection.delete(ThugrqJob.key_for(job_id), Result.get_key(job_id), fencing.ATTEMPT_KEY.format(job_id))


def collect(directory: Path, connection, keep: int = KEEP, batch: int = 100) -> collector.Counts:
    return collector.Collector(connection, Store(directory, create=True), keep=keep, batch=batch).run_once()
