"""`thugrq group` and `thugrq export` read the collected store (issue 16, item 3) when Redis no
longer holds a group, a job or a sample: the same report (counts, differences, pages) and the
same files, from what `thugrq collect` wrote.

Jobs end without Thug, through the worker's own outcome paths (tests/collected.py): 4 jobs,
h0 and h1 each on generic and IT; h0's two analyses downloaded different samples, and the last
job (IT's h1) failed as refused.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pyzipper

from tests.collected import collect, expire, finish, payload
from thugrq import groups, samples
from thugrq.store import Store


def collected_group(connection, directory: Path) -> tuple[str, list[str]]:
    """The 4 jobs collected into `directory`: their group, and their ids sorted."""
    submission = finish(connection, 4, failed=1)
    collect(directory, connection)
    return submission.group, sorted(job.id for job in submission.jobs)


def test_group_gone_from_redis_is_counted_per_status_and_queue_from_the_store(thugrq, connection, tmp_path):
    group, _ = collected_group(connection, tmp_path)
    connection.flushall()
    shown = thugrq("group", group, "--json", "--store", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["store"] == str(tmp_path)
    assert report["summary"] == {
        "group": group, "total": 4, "ended": 4, "remaining": 0,
        "statuses": {"completed": 3, "failed": 1},
        "queues": {"generic": {"total": 2, "completed": 2}, "IT": {"total": 2, "completed": 1, "failed": 1}},
    }


def test_group_gone_from_redis_shows_the_differences_of_its_collected_analyses(connection, tmp_path):
    group, _ = collected_group(connection, tmp_path)
    connection.flushall()
    report = groups.report(connection, group, store=Store(tmp_path))
    [different] = report.compared.differences
    assert (different.url, different.aspect) == ("http://h0.test/", "samples")
    assert report.compared.to_dict() == {"analyses": 3, "completed": 3, "limit": groups.COMPARE_LIMIT,
                                         "limited": False}


def test_group_gone_from_redis_is_paged_from_the_store(thugrq, connection, tmp_path):
    group, ids = collected_group(connection, tmp_path)
    connection.flushall()
    shown = thugrq("group", group, "--json", "--store", str(tmp_path), "--offset", "1", "--limit", "2")
    report = json.loads(shown.stdout)
    assert [row["id"] for row in report["jobs"]] == ids[1:3]
    assert report["page"] == {"offset": 1, "limit": 2, "listed": 2, "total": 4, "more": 1}


def test_group_text_from_thugrq_store_says_the_store_was_read(thugrq, env, connection, tmp_path):
    group, _ = collected_group(connection, tmp_path)
    connection.flushall()
    shown = thugrq("group", group, env={**env, "THUGRQ_STORE": str(tmp_path)})
    assert shown.returncode == 0, shown.stderr
    assert f"group {group}: 4 job(s), 4 ended (3 completed, 1 failed), 0 not ended" in shown.stdout
    assert f"Redis no longer holds this group: read from the store at {tmp_path}" in shown.stdout
    assert "DIFFERENT samples for http://h0.test/:" in shown.stdout


def test_a_group_neither_in_redis_nor_in_the_store_is_named_in_one_line(thugrq, connection, tmp_path):
    collected_group(connection, tmp_path)
    shown = thugrq("group", "no-such-group", "--store", str(tmp_path))
    assert shown.returncode != 0
    assert shown.stderr.strip() == (
        f"Error: no group 'no-such-group' in Redis (never created, or expired); "
        f"nor in the store at {tmp_path}"
    )


def test_jobs_of_a_live_group_expired_after_collection_are_listed_from_the_store(thugrq, connection, tmp_path):
    group, ids = collected_group(connection, tmp_path)
    for job_id in ids[:2]:
        expire(connection, job_id)  # the group itself is still in Redis
    without = json.loads(thugrq("group", group, "--json", check=True).stdout)
    assert [row["status"] for row in without["jobs"][:2]] == ["lost", "lost"]
    shown = json.loads(thugrq("group", group, "--json", "--store", str(tmp_path), check=True).stdout)
    assert shown["store"] is None  # the report is Redis's; only the expired jobs are the store's
    line, row = Store(tmp_path).job(ids[0]), shown["jobs"][0]
    assert (row["id"], row["status"], row["url"]) == (ids[0], line["status"], line["url"])
    assert "lost" not in [row["status"] for row in shown["jobs"]]


def test_differences_of_a_live_group_include_its_jobs_expired_after_collection(connection, tmp_path):
    group, ids = collected_group(connection, tmp_path)
    for job_id in ids:
        expire(connection, job_id)
    assert groups.report(connection, group).compared.differences == []
    [different] = groups.report(connection, group, store=Store(tmp_path)).compared.differences
    assert (different.url, different.aspect) == ("http://h0.test/", "samples")


def collected_job(connection, directory: Path) -> tuple[str, str]:
    """One completed job collected into `directory`, then gone from Redis with its sample: its
    id and the sample's SHA-256."""
    job_id = finish(connection, 1).jobs[0].id
    collect(directory, connection)
    digest = hashlib.sha256(payload(0)).hexdigest()
    expire(connection, job_id)
    connection.delete(samples.SAMPLE_KEY.format(digest))
    return job_id, digest


def test_export_writes_a_collected_job_and_its_sample_mode_0600(thugrq, connection, tmp_path):
    job_id, digest = collected_job(connection, tmp_path / "store")
    out = tmp_path / "out"
    exported = thugrq("export", job_id, "-o", str(out), "--store", str(tmp_path / "store"))
    assert exported.returncode == 0, exported.stderr
    sample = out / "samples" / digest
    assert exported.stdout.split() == [str(out / f"{job_id}.json"), str(sample)]
    assert json.loads((out / f"{job_id}.json").read_text()) == Store(tmp_path / "store").job(job_id)["result"]
    assert sample.read_bytes() == payload(0)
    assert stat.S_IMODE(sample.stat().st_mode) == 0o600


def test_export_zip_of_a_collected_job_holds_its_sample(thugrq, connection, tmp_path):
    job_id, digest = collected_job(connection, tmp_path / "store")
    out = tmp_path / "out"
    exported = thugrq("export", job_id, "-o", str(out), "--zip", "--store", str(tmp_path / "store"))
    assert exported.returncode == 0, exported.stderr
    with pyzipper.AESZipFile(out / "samples.zip") as archive:
        archive.setpassword(b"infected")
        assert archive.read(digest) == payload(0)
    assert stat.S_IMODE((out / "samples.zip").stat().st_mode) == 0o600


def test_export_without_the_store_names_the_collected_job_as_gone(thugrq, connection, tmp_path):
    job_id, _ = collected_job(connection, tmp_path / "store")
    exported = thugrq("export", job_id, "-o", str(tmp_path / "out"))
    assert exported.returncode == 1
    assert f"{job_id}: no job {job_id!r} in Redis" in exported.stderr


def test_export_of_a_group_gone_from_redis_writes_its_collected_jobs(thugrq, connection, tmp_path):
    group, _ = collected_group(connection, tmp_path / "store")
    connection.flushall()
    [refused] = [row.id for row in Store(tmp_path / "store").find(group=group) if row.status == "failed"]
    out = tmp_path / "out"
    exported = thugrq("export", "--group", group, "-o", str(out), "--store", str(tmp_path / "store"))
    assert exported.returncode == 1  # the refused job has no result to export: named, not written
    assert exported.stderr.strip() == f"{refused}: not exported, the job is failed (collected)"
    assert len(list(out.glob("*.json"))) == 3
    assert len(list((out / "samples").iterdir())) == 3
