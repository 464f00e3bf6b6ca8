"""Draining finished jobs out of Redis into a collected store (thugrq.store), `thugrq collect`.

Results stayed in Redis for their whole TTL (30 days), so a center's memory grew with every
day of work. The collector finds finished outcomes where RQ keeps them, the finished and
failed registries of every queue in RQ's queue set, read a bounded batch at a time in the
registries' order (soonest to expire first). It collects completed, timeout, error and refused
analyses (finished jobs, with their result document) and failed or stopped jobs (with their
reason: a refused job, a crash past its retries, the memory limit), with any superseded
attempts' outcomes; queued, running and cancelled jobs are left alone.

Each batch: samples written to the store (content-addressed, idempotent), then its lines
appended and indexed in one transaction (thugrq.store), and only then, for each outcome the
index holds, the job's keys in Redis (its hash, result stream, attempt and superseded keys) get
at most `keep` seconds to live and its registry entry the same expiry, in one script that
first checks the job still has the end that was collected (a job run again keeps its TTLs).
Samples keep their own TTLs: other jobs may name them. A crash anywhere leaves either an
outcome not indexed (collected again next time, its tail cut), or indexed with its TTLs still
long (found by its registry score past now + keep, and shortened then): never lost, never
written twice. Collectors sharing a store serialise on its write lock and skip what the index
holds; a pass costs Redis a read of the ids still in the registries (those collected stay there
`keep` seconds) and a few commands per job collected.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from rq.job import JobStatus
from rq.results import Result

from thugrq import fencing, job as jobs, samples
from thugrq.exceptions import UnknownJob
from thugrq.queue import ThugrqQueue
from thugrq.store import Entry, Store

log = logging.getLogger("thugrq.collector")

#: Seconds a collected job stays in Redis (the dashboard shows recent work).
KEEP = 3600
#: Registry entries read per round trip, and jobs collected per transaction.
BATCH = 100
#: Seconds between passes of a collector that keeps running.
INTERVAL = 5.0
#: RQ states whose outcome is collected.
COLLECTED = {JobStatus.FINISHED.value, JobStatus.FAILED.value, JobStatus.STOPPED.value}

# KEYS: job hash, result stream, attempt, superseded, registry; ARGV: the end collected, keep,
# the registry score it may have at most, the job id.
_SHORTEN = """
if (redis.call('HGET', KEYS[1], 'ended_at') or '') ~= ARGV[1] then return 0 end
local keep = tonumber(ARGV[2])
for i = 1, 4 do
  local ttl = redis.call('TTL', KEYS[i])
  if ttl == -1 or ttl > keep then redis.call('EXPIRE', KEYS[i], keep) end
end
local score = tonumber(redis.call('ZSCORE', KEYS[5], ARGV[4]) or '-1')
if score == nil or score > tonumber(ARGV[3]) then redis.call('ZADD', KEYS[5], 'XX', ARGV[3], ARGV[4]) end
return 1
"""


@dataclass
class Counts:
    """What a pass did."""

    collected: int = 0
    samples: int = 0
    shortened: int = 0

    def add(self, other: Counts) -> None:
        self.collected += other.collected
        self.samples += other.samples
        self.shortened += other.shortened


class Collector:
    """Moves finished outcomes from `connection` into `store` (see the module's docstring)."""

    def __init__(self, connection: Redis, store: Store, keep: int = KEEP, batch: int = BATCH) -> None:
        self.connection, self.store, self.keep, self.batch = connection, store, keep, batch
        self.stopping = threading.Event()
        self._shorten = connection.register_script(_SHORTEN)

    def registries(self) -> list[str]:
        """The finished and failed registries of every queue RQ knows."""
        found = []
        for queue in sorted(ThugrqQueue.all(connection=self.connection), key=lambda q: q.name):
            found += [queue.finished_job_registry.key, queue.failed_job_registry.key]
        return found

    def run_once(self) -> Counts:
        """One pass over every registry: everything finished by now ends up collected."""
        self.store.recover()
        counts = Counts()
        for registry in self.registries():
            start = 0
            while not self.stopping.is_set():
                page = self.connection.zrange(registry, start, start + self.batch - 1, withscores=True)
                if not page:
                    break
                start += len(page)
                counts.add(self._collect(registry, [(i.decode(), s) for i, s in page]))
        return counts

    def run(self, interval: float = INTERVAL, on_pass: Any = None) -> None:
        """Pass after pass, `interval` seconds apart, until `stopping` is set."""
        while not self.stopping.is_set():
            counts = self.run_once()
            if on_pass:
                on_pass(counts)
            self.stopping.wait(interval)

    def _collect(self, registry: str, page: list[tuple[str, float]]) -> Counts:
        """Collect the page's jobs not collected yet, and shorten the TTLs of those collected
        whose registry score says they were not shortened (a collector died in between)."""
        indexed = self.store.indexed_ids([job_id for job_id, _ in page])
        latest = time.time() + self.keep
        entries = [
            entry for job_id, score in page
            if job_id not in indexed or score > latest
            if (entry := self._entry(job_id)) is not None
        ]
        counts = Counts()
        for entry in entries:
            counts.samples += self._keep_samples(entry)
        counts.collected = len(self.store.append(entries))
        for entry in entries:  # each is in the index now: written by this append or before
            counts.shortened += self._shorten_ttls(registry, entry)
        return counts

    def _entry(self, job_id: str) -> Entry | None:
        """What to collect of a job: None unless it has ended (or when it is gone)."""
        ended_at = self.connection.hget(jobs.ThugrqJob.key_for(job_id), "ended_at")
        try:
            state = jobs.state(self.connection, job_id)
        except UnknownJob:
            return None
        if state.status not in COLLECTED:
            return None
        document = self._document(job_id) if state.status == JobStatus.FINISHED else None
        line = {
            "id": job_id,
            "ended_at": (ended_at or b"").decode("utf-8", "replace"),
            "group": self._group(job_id),
            "queue": state.queue,
            "status": (document or {}).get("status") or state.status,
            "url": state.url,
            "useragent": state.useragent,
            "reason": state.reason,
            "superseded": self._superseded(job_id),
            "collected_at": datetime.now(timezone.utc).isoformat(),
            "result": document,
        }
        return Entry(line, _sample_hashes(document))

    def _document(self, job_id: str) -> dict[str, Any] | None:
        """The job's result document; None when there is none RQ can read (whoever writes to
        Redis could have put anything there: the job is collected as it stands, never retried
        forever)."""
        try:
            found = jobs.fetch(self.connection, job_id).latest_result()
        except Exception:  # noqa: BLE001 - an unreadable hash or result stream
            return None
        if found is None or found.type != Result.Type.SUCCESSFUL:
            return None
        return found.return_value if isinstance(found.return_value, dict) else None

    def _superseded(self, job_id: str) -> list[dict[str, Any]] | None:
        """The refused outcomes of the job's replaced attempts; None when they are unreadable."""
        try:
            return fencing.superseded(self.connection, job_id)
        except ValueError:
            return None

    def _group(self, job_id: str) -> str | None:
        group = self.connection.hget(jobs.ThugrqJob.key_for(job_id), "group_id")
        return group.decode("utf-8", "replace") if group else None

    def _keep_samples(self, entry: Entry) -> int:
        """Write the entry's samples Redis holds that the store lacks; returns how many."""
        written = 0
        for digest in entry.samples:
            if self.store.has_sample(digest):
                entry.stored.add(digest)
                continue
            try:
                data = samples.get(self.connection, digest)
            except samples.CorruptSample as error:
                log.warning("job %s: %s: not collected", entry.line["id"], error)
                continue
            if data is not None:
                self.store.put_sample(digest, data)
                entry.stored.add(digest)
                written += 1
        return written

    def _shorten_ttls(self, registry: str, entry: Entry) -> int:
        job_id, ended_at = entry.key
        keys = [
            jobs.ThugrqJob.key_for(job_id), Result.get_key(job_id),
            fencing.ATTEMPT_KEY.format(job_id), fencing.SUPERSEDED_KEY.format(job_id), registry,
        ]
        return int(self._shorten(keys, [ended_at, self.keep, int(time.time()) + self.keep, job_id]))


def _sample_hashes(document: dict[str, Any] | None) -> list[str]:
    """The SHA-256 of each sample a result lists (malformed ones left out), each once."""
    found: dict[str, None] = {}
    for entry in ((document or {}).get("summary") or {}).get("samples") or []:
        try:
            found[samples.check_sha256(str(entry.get("sha256")))] = None
        except (ValueError, AttributeError):
            continue
    return list(found)
