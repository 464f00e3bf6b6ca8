"""`thugrq collect` (issue 16, item 3): finished jobs moved from Redis to a store on disk,
each exactly once, found again by id, URL, group and sample hash, read by `thugrq result` and
`thugrq sample` once Redis no longer holds them; and exactly once still when the collector is
killed at random moments, or two collect at once.

Jobs end without Thug, through the worker's own outcome paths (tests/collected.py).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import signal
import sqlite3
import stat
import subprocess
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from rq.results import Result

from tests.collected import KEEP, REFUSAL, collect, expire, finish, payload
from tests.conftest import BIN, wait_for
from thugrq import fencing, samples, submit
from thugrq.job import ThugrqJob
from thugrq.store import Store


def lines_per_id(directory: Path) -> Counter:
    """How many JSON lines each job id has across every day file (a partial tail is no line)."""
    found: Counter = Counter()
    for path in (directory / "results").glob("*.jsonl"):
        for line in path.read_bytes().split(b"\n"):
            if line:
                found[json.loads(line)["id"]] += 1
    return found


def index_rows_per_id(directory: Path) -> Counter:
    store = Store(directory)
    return Counter(row.id for row in store.find())


def test_collect_once_writes_each_finished_job_once_and_again_nothing(thugrq, connection, tmp_path):
    submission = finish(connection, 10, failed=2)
    first = thugrq("collect", "--to", str(tmp_path / "store"), "--once")
    second = thugrq("collect", "--to", str(tmp_path / "store"), "--once")
    assert first.returncode == 0, first.stderr
    assert "collected 10 job(s) and 3 sample(s)" in first.stderr
    assert "collected 0 job(s) and 0 sample(s)" in second.stderr
    assert lines_per_id(tmp_path / "store") == Counter({job.id: 1 for job in submission.jobs})


def test_the_index_finds_a_job_by_id_url_group_and_sample_hash(connection, tmp_path):
    submission = finish(connection, 6)
    collect(tmp_path, connection)
    store = Store(tmp_path)
    one = submission.jobs[0]
    assert [row.id for row in store.find(job_id=one.id)] == [one.id]
    assert {row.id for row in store.find(url=one.url)} == {j.id for j in submission.jobs if j.url == one.url}
    assert {row.id for row in store.find(group=submission.group)} == {j.id for j in submission.jobs}
    digest = hashlib.sha256(payload(0)).hexdigest()
    assert len(store.find(sample=digest)) == 2  # jobs 0 and 3 downloaded payload 0
    assert store.job(one.id)["result"]["url"] == one.url


def test_each_sample_is_written_once_mode_0600_under_its_hash(connection, tmp_path):
    finish(connection, 6)
    counts = collect(tmp_path, connection)
    files = [p for p in (tmp_path / "samples").rglob("*") if p.is_file()]
    digest = hashlib.sha256(payload(1)).hexdigest()
    assert counts.samples == 3 and len(files) == 3
    path = tmp_path / "samples" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == payload(1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_job_is_collected_with_its_reason(connection, tmp_path):
    submission = finish(connection, 2, failed=1)
    collect(tmp_path, connection)
    line = Store(tmp_path).job(submission.jobs[-1].id)
    assert (line["status"], line["reason"], line["result"]) == ("failed", REFUSAL, None)


def test_a_job_not_ended_is_not_collected(connection, tmp_path):
    submit.enqueue(connection, ["http://queued.test/"], ["generic"])
    assert collect(tmp_path, connection).collected == 0
    assert lines_per_id(tmp_path) == Counter()


def test_collection_shortens_the_jobs_ttls_and_leaves_its_samples_alone(connection, tmp_path):
    job_id = finish(connection, 1).jobs[0].id
    collect(tmp_path, connection, keep=KEEP)
    for key in (ThugrqJob.key_for(job_id), Result.get_key(job_id), fencing.ATTEMPT_KEY.format(job_id)):
        assert 0 < connection.ttl(key) <= KEEP, key
    assert connection.zscore("rq:finished:generic", job_id) <= time.time() + KEEP
    assert connection.ttl(samples.SAMPLE_KEY.format(hashlib.sha256(payload(0)).hexdigest())) > KEEP


def test_a_job_indexed_before_its_ttls_were_shortened_is_shortened_not_written_again(connection, tmp_path):
    """A collector dying between its commit and its EXPIREs: the next pass finishes the job."""
    submission = finish(connection, 1)
    job_id = submission.jobs[0].id
    collect(tmp_path, connection)
    connection.expire(ThugrqJob.key_for(job_id), 10**6)  # as if the EXPIREs never happened
    connection.zadd("rq:finished:generic", {job_id: time.time() + 10**6}, xx=True)
    counts = collect(tmp_path, connection)
    assert (counts.collected, counts.shortened) == (0, 1)
    assert connection.ttl(ThugrqJob.key_for(job_id)) <= KEEP
    assert lines_per_id(tmp_path) == Counter({job.id: 1 for job in submission.jobs})


def test_a_tail_left_by_a_dead_writer_is_cut_and_never_read(connection, tmp_path):
    submission = finish(connection, 2)
    collect(tmp_path, connection)
    [day] = (tmp_path / "results").glob("*.jsonl")
    size = day.stat().st_size
    with open(day, "ab") as results:
        results.write(b'{"id": "half a line')  # appended, then the writer was killed
    Store(tmp_path).recover()
    assert day.stat().st_size == size
    assert lines_per_id(tmp_path) == Counter({job.id: 1 for job in submission.jobs})


def test_result_reads_a_collected_job_after_it_expired_from_redis(thugrq, connection, tmp_path):
    job_id = finish(connection, 1).jobs[0].id
    collect(tmp_path, connection)
    expire(connection, job_id)
    shown = thugrq("result", job_id, "--json", "--store", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["url"] == "http://h0.test/"
    gone = thugrq("result", job_id)
    assert gone.returncode != 0 and f"no job {job_id!r} in Redis" in gone.stderr


def test_result_of_a_collected_failed_job_says_why(thugrq, env, connection, tmp_path):
    job_id = finish(connection, 2, failed=1).jobs[-1].id
    collect(tmp_path, connection)
    expire(connection, job_id)
    shown = thugrq("result", job_id, env={**env, "THUGRQ_STORE": str(tmp_path)})
    assert shown.returncode != 0 and f"job {job_id} failed: {REFUSAL}" in shown.stderr


def test_sample_reads_a_collected_sample_after_it_expired_from_redis(thugrq, connection, tmp_path):
    finish(connection, 1)
    collect(tmp_path, connection)
    digest = hashlib.sha256(payload(0)).hexdigest()
    connection.delete(samples.SAMPLE_KEY.format(digest))
    written = thugrq("sample", digest, "-o", str(tmp_path / "out.bin"), "--store", str(tmp_path))
    assert written.returncode == 0, written.stderr
    assert (tmp_path / "out.bin").read_bytes() == payload(0)


def test_the_outcomes_of_a_group_gone_from_redis_come_from_the_store(connection, tmp_path):
    submission = finish(connection, 4, failed=1)
    collect(tmp_path, connection)
    connection.flushall()
    outcomes = Store(tmp_path).outcomes(submission.group)
    assert [o.id for o in outcomes] == sorted(j.id for j in submission.jobs)
    assert Counter(o.status for o in outcomes) == Counter(completed=3, failed=1)
    [different] = submit.compare_outcomes(outcomes)  # h0 from generic and IT: other payloads
    assert (different.url, different.aspect) == ("http://h0.test/", "samples")


def start_collector(env: dict[str, str], directory: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "thugrq"), "collect", "--to", str(directory), "--batch", "7", "--interval", "0.1", *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def indexed(directory: Path, what: str = "SELECT count(*) FROM jobs") -> int:
    """Outcomes the store's index holds (0 before the collector made it), or `what` it says."""
    if not (directory / "index.sqlite").exists():
        return 0
    with closing(sqlite3.connect(directory / "index.sqlite", timeout=30)) as index:
        try:
            return index.execute(what).fetchone()[0] or 0
        except sqlite3.OperationalError:  # the schema is still being made
            return 0


def unindexed_bytes(directory: Path) -> int:
    """Bytes of the results files past what the index holds: lines appended, not committed."""
    written = sum(path.stat().st_size for path in (directory / "results").glob("*.jsonl"))
    return written - indexed(directory, "SELECT sum(length) FROM files")


def stopped_with_a_tail(process: subprocess.Popen, directory: Path) -> bool:
    """Whether the collector is stopped (SIGSTOP) with lines appended and not indexed; when it
    only seemed so, it is resumed."""
    if unindexed_bytes(directory) <= 0:
        return False
    process.send_signal(signal.SIGSTOP)
    wait_for(lambda: Path(f"/proc/{process.pid}/stat").read_text().split(") ")[1][0] == "T", timeout=10, interval=0.001)
    if unindexed_bytes(directory) > 0:
        return True
    process.send_signal(signal.SIGCONT)
    return False


def test_a_collector_killed_at_random_moments_collects_every_job_exactly_once(env, connection, tmp_path):
    """Five collectors SIGKILLed in the middle of the work (once the index reached a random
    count, a random few milliseconds later), then more stopped while lines they appended were
    not indexed yet and killed, until one left such a tail for the next to cut (a stop during
    SQLite's commit leaves none: the commit is made). Then one is left to finish."""
    submission = finish(connection, 300, failed=20, padding=20_000)
    rng = random.Random()
    for target in sorted(rng.sample(range(10, 200), 5)):
        process = start_collector(env, tmp_path)
        wait_for(lambda: indexed(tmp_path) >= target, timeout=60, interval=0.002)
        time.sleep(rng.uniform(0, 0.05))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert indexed(tmp_path) < 300  # killed with work left
    for _ in range(10):
        process = start_collector(env, tmp_path)
        wait_for(lambda: stopped_with_a_tail(process, tmp_path), timeout=30, interval=0.0005)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if unindexed_bytes(tmp_path) > 0:
            break
    assert unindexed_bytes(tmp_path) > 0
    finished = start_collector(env, tmp_path, "--once")
    assert finished.wait(timeout=60) == 0, finished.stderr.read()
    everything = Counter({job.id: 1 for job in submission.jobs})
    assert lines_per_id(tmp_path) == everything
    assert index_rows_per_id(tmp_path) == everything
    assert unindexed_bytes(tmp_path) == 0


def test_two_collectors_at_once_write_each_job_once(env, connection, tmp_path):
    submission = finish(connection, 200, padding=2_000)
    both = [start_collector(env, tmp_path, "--once") for _ in range(2)]
    codes = [process.wait(timeout=60) for process in both]
    stderr = [process.stderr.read() for process in both]
    assert codes == [0, 0], stderr
    said = [re.search(r"collected (\d+) job", text) for text in stderr]
    assert sum(int(found.group(1)) for found in said) == 200
    everything = Counter({job.id: 1 for job in submission.jobs})
    assert lines_per_id(tmp_path) == everything
    assert index_rows_per_id(tmp_path) == everything
