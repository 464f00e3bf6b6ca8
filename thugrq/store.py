"""The collected store: finished jobs moved out of Redis onto disk, and the reads that find them.

Redis keeps a result for hours once `thugrq collect` (thugrq.collector) has it here, so this is
where an analysis lives for good. A store is a directory:

- `results/YYYY-MM-DD.jsonl`: one JSON line per collected outcome, by the UTC day it ended (the
  result document under `result`, with the job's id, group, queue, status and end);
- `samples/ab/cd/<sha256>`: each downloaded file once, mode 0600, never executed;
- `index.sqlite`: the index, and the source of truth. A line is part of the store only once
  the index holds its job with the line's byte offset: lines are appended, flushed and
  fsync'd, then indexed with the new length of their file in one SQLite transaction
  (synchronous=FULL). The write lock of that transaction (BEGIN IMMEDIATE) is also the only
  right to append, so whatever lies past a file's indexed length was left by a writer that
  died, and the next writer cuts it off. An outcome (job id and end) is indexed once
  (primary key): collectors sharing a directory never write one twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thugrq.job import Outcome
from thugrq.results import analysed_from
from thugrq.samples import check_sha256

#: The variable naming the store readers fall back to (`--store`).
STORE_VARIABLE = "THUGRQ_STORE"
INDEX = "index.sqlite"
#: Held while a process opens the store (see Store.__init__).
OPENING_LOCK = ".opening.lock"
#: Seconds a collector waits for another one's write transaction.
LOCK_TIMEOUT = 120.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, length INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT NOT NULL, ended_at TEXT NOT NULL, grp TEXT, queue TEXT, status TEXT, url TEXT,
    file TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL,
    collected_at REAL NOT NULL, PRIMARY KEY (id, ended_at));
CREATE INDEX IF NOT EXISTS jobs_url ON jobs (url);
CREATE INDEX IF NOT EXISTS jobs_group ON jobs (grp);
CREATE TABLE IF NOT EXISTS samples (
    sha256 TEXT NOT NULL, id TEXT NOT NULL, ended_at TEXT NOT NULL, stored INTEGER NOT NULL,
    PRIMARY KEY (sha256, id, ended_at));
"""


class StoreError(Exception):
    """The store cannot be used: missing, or a results file shorter than its index says."""


@dataclass
class Entry:
    """One outcome to collect: what its JSON line holds, and the hashes of its samples (those
    in `stored` were written to samples/ before it is appended)."""

    line: dict[str, Any]
    samples: list[str] = field(default_factory=list)
    stored: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str, str]:
        return self.line["id"], self.line["ended_at"]


@dataclass(frozen=True)
class Row:
    """A collected outcome as the index lists it (no document: read it with `Store.line`)."""

    id: str
    ended_at: str
    group: str | None
    queue: str | None
    status: str | None
    url: str | None
    file: str
    offset: int
    length: int


class Store:
    """A collected store in `root`; `create` makes it (directories mode 0700)."""

    def __init__(self, root: str | Path, create: bool = False) -> None:
        self.root = Path(root)
        if not (self.root / INDEX).exists() and not create:
            raise StoreError(f"no collected store at {self.root} (no {INDEX})")
        for folder in (self.root, self.root / "results", self.root / "samples"):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Two collectors opening a new store at once: SQLite answers the switch to WAL and the
        # schema's first writes with "database is locked" at once (no busy wait), so the opening
        # is made one process at a time, under a lock file of the store's own.
        with open(self.root / OPENING_LOCK, "a") as opening:
            fcntl.flock(opening, fcntl.LOCK_EX)
            self.db = sqlite3.connect(self.root / INDEX, timeout=LOCK_TIMEOUT, isolation_level=None)
            os.chmod(self.root / INDEX, 0o600)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
            self.db.executescript(_SCHEMA)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """The store's write lock and transaction: committed on success, else rolled back."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def recover(self) -> int:
        """Cut every results file back to its indexed length (the tails of dead writers);
        returns the bytes cut."""
        with self._writing():
            return sum(self._cut(path.name) for path in (self.root / "results").glob("*.jsonl"))

    def _cut(self, name: str) -> int:
        """Truncate results/`name` to its indexed length (under the write lock)."""
        path = self.root / "results" / name
        indexed, size = self._length(name), path.stat().st_size if path.exists() else 0
        if size < indexed:
            raise StoreError(f"{path} holds {size} bytes, its index {indexed}: damaged, not written to")
        if size > indexed:
            os.truncate(path, indexed)
        return size - indexed

    def collected(self, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these outcomes (job id, end) the index holds."""
        found = set()
        for key in keys:
            if self.db.execute("SELECT 1 FROM jobs WHERE id = ? AND ended_at = ?", key).fetchone():
                found.add(key)
        return found

    def indexed_ids(self, ids: list[str]) -> set[str]:
        """Which of these job ids have some outcome collected."""
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT DISTINCT id FROM jobs WHERE id IN ({marks})", ids) if ids else []
        return {row[0] for row in rows}

    def append(self, entries: list[Entry]) -> list[Entry]:
        """Write the entries not collected yet (returned) and index them, in one transaction:
        lines appended to their day's file and fsync'd, then the index committed."""
        with self._writing():
            done = self.collected(entry.key for entry in entries)
            fresh = list({e.key: e for e in entries if e.key not in done}.values())
            by_file: dict[str, list[Entry]] = {}
            for entry in fresh:
                by_file.setdefault(_day_file(entry.line["ended_at"]), []).append(entry)
            now = time.time()
            for name, written in by_file.items():
                self._cut(name)
                offset = self._length(name)
                lines = [json.dumps(e.line, sort_keys=True).encode() + b"\n" for e in written]
                _append_synced(self.root / "results" / name, b"".join(lines))
                for entry, line in zip(written, lines):
                    self._index(entry, name, offset, len(line), now)
                    offset += len(line)
                self.db.execute("INSERT OR REPLACE INTO files VALUES (?, ?)", (name, offset))
        return fresh

    def _length(self, name: str) -> int:
        row = self.db.execute("SELECT length FROM files WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def _index(self, entry: Entry, name: str, offset: int, length: int, now: float) -> None:
        line = entry.line
        self.db.execute(
            "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (line["id"], line["ended_at"], line.get("group"), line.get("queue"), line.get("status"),
             line.get("url"), name, offset, length, now),
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?)",
            [(sha, line["id"], line["ended_at"], sha in entry.stored) for sha in entry.samples],
        )

    def sample_path(self, sha256: str) -> Path:
        digest = check_sha256(sha256)
        return self.root / "samples" / digest[:2] / digest[2:4] / digest

    def has_sample(self, sha256: str) -> bool:
        return self.sample_path(sha256).exists()

    def put_sample(self, sha256: str, data: bytes) -> None:
        """Write a sample once (mode 0600; fsync'd, then renamed into place), before the job
        naming it is indexed: a crash leaves at most a temporary file."""
        path = self.sample_path(sha256)
        if path.exists():
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            _write_all(descriptor, data)
        finally:
            os.close(descriptor)
        os.rename(temporary, path)
        _sync_directory(path.parent)

    def read_sample(self, sha256: str) -> bytes | None:
        """A stored sample's bytes, checked against its hash (ValueError when they differ)."""
        path = self.sample_path(sha256)
        if not path.exists():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != path.name:
            raise ValueError(f"sample {path.name} in the store at {self.root}: other bytes on disk")
        return data

    def find(self, job_id: str | None = None, url: str | None = None, group: str | None = None,
             sample: str | None = None) -> list[Row]:
        """Collected outcomes by job id, URL, group or sample hash (any given all match),
        oldest end first."""
        where, values = [], []
        for column, value in (("id", job_id), ("url", url), ("grp", group)):
            if value is not None:
                where.append(f"jobs.{column} = ?")
                values.append(value)
        if sample is not None:
            where.append("EXISTS (SELECT 1 FROM samples s WHERE s.sha256 = ? AND s.id = jobs.id "
                         "AND s.ended_at = jobs.ended_at)")
            values.append(check_sha256(sample))
        query = "SELECT id, ended_at, grp, queue, status, url, file, offset, length FROM jobs"
        query += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ended_at, id"
        return [Row(*row) for row in self.db.execute(query, values)]

    def line(self, row: Row) -> dict[str, Any]:
        """The collected JSON line of an indexed outcome."""
        with open(self.root / "results" / row.file, "rb") as results:
            results.seek(row.offset)
            return json.loads(results.read(row.length))

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The latest collected outcome of a job (its JSON line), or None."""
        rows = self.find(job_id=job_id)
        return self.line(rows[-1]) if rows else None

    def outcomes(self, group: str) -> list[Outcome]:
        """The collected outcomes of a group's jobs (the latest of each), sorted by id: what
        `thugrq group` shows for a group Redis no longer holds."""
        latest = {row.id: row for row in self.find(group=group)}
        return [outcome(self.line(latest[job_id])) for job_id in sorted(latest)]


def nor_in(store: Store | None) -> str:
    """What a "not in Redis" message adds when the store was read too."""
    return f"; nor in the store at {store.root}" if store is not None else ""


def outcome(line: dict[str, Any]) -> Outcome:
    """A collected line as the `Outcome` reports and comparisons are made of."""
    document = line.get("result") or {}
    summary = document.get("summary") or {}
    return Outcome(
        id=line["id"], url=line.get("url"), queue=line.get("queue"),
        useragent=line.get("useragent"), status=line.get("status") or "unknown",
        reason=line.get("reason") or document.get("error"), final_url=summary.get("final_url"),
        exploits=len(summary.get("exploits") or []), samples=len(summary.get("samples") or []),
        analysed_from=analysed_from(document) if document else None, summary=summary or None,
    )


def _day_file(ended_at: str) -> str:
    """The results file of an outcome: the UTC day it ended (today's when it has no end)."""
    try:
        ended = datetime.fromisoformat(ended_at.replace("Z", "+00:00"))
    except ValueError:
        ended = datetime.now(timezone.utc)
    return f"{ended.astimezone(timezone.utc):%Y-%m-%d}.jsonl"


def _append_synced(path: Path, data: bytes) -> None:
    """Append `data` to `path` (created mode 0600) and fsync it, and its directory if new."""
    created = not path.exists()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        _write_all(descriptor, data)
    finally:
        os.close(descriptor)
    if created:
        _sync_directory(path.parent)


def _write_all(descriptor: int, data: bytes) -> None:
    """Write all of `data` (os.write may write less) and fsync it."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]
    os.fsync(descriptor)


def _sync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
