"""`thugrq` as a process: what enqueue prints for scripts, and jobs read back by status and queues.

Arguments and messages are tested in this process, in test_cli_runner.py."""

from __future__ import annotations

import json

from thugrq.queue import ThugrqQueue


def test_enqueue_prints_one_id_per_url_and_queue(thugrq, connection):
    enqueued = thugrq("enqueue", "http://a.test/", "http://b.test/", "-q", "it", "-q", "generic")
    assert enqueued.returncode == 0, enqueued.stderr
    assert len(enqueued.stdout.split()) == 4
    assert {q.name: q.count for q in ThugrqQueue.all(connection=connection)} == {
        "IT": 2, "generic": 2,
    }


def test_enqueue_json_describes_each_job(thugrq):
    enqueued = thugrq("enqueue", "http://a.test/", "--queue", "Italy", "--json", "-u", "win7ie90")
    row = json.loads(enqueued.stdout)
    assert row["url"] == "http://a.test/" and row["queue"] == "IT"
    assert row["useragent"] == "win7ie90" and row["id"]


def test_status_of_a_queued_job(thugrq):
    job_id = thugrq("enqueue", "http://a.test/", check=True).stdout.strip()
    shown = thugrq("status", job_id, "--json")
    assert json.loads(shown.stdout)["status"] == "queued"


def test_queues_lists_counts(thugrq):
    thugrq("enqueue", "http://a.test/", "-q", "US", check=True)
    listed = thugrq("queues").stdout.splitlines()
    assert listed[0].split() == ["QUEUE", "QUEUED", "STARTED", "FINISHED", "FAILED"]
    assert listed[1].split() == ["US", "1", "0", "0", "0"]
