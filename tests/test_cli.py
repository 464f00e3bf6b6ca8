"""`thugrq`: bad input is refused before anything is enqueued; answers are clear and scriptable."""

from __future__ import annotations

import json

import pytest

from thugrq.queue import ThugrqQueue


def queued_jobs(connection) -> int:
    return sum(queue.count for queue in ThugrqQueue.all(connection=connection))


@pytest.mark.parametrize(
    "args, message",
    [
        (["not-a-url"], "invalid URL 'not-a-url'"),
        (["ftp://x.test/"], "give a full http:// or https:// URL"),
        (["http://x.test/", "http://bad host/"], "spaces or control characters"),
        (["http://x.test:99999/"], "invalid URL"),
        (["--useragent", "nosuchua", "http://x.test/"], "invalid useragent 'nosuchua'"),
        (["--queue", "Narnia", "http://x.test/"], "unknown country 'Narnia'"),
        (["--referer", "javascript:alert(1)", "http://x.test/"], "invalid referer"),
        (["--timeout", "0", "http://x.test/"], "--timeout"),
    ],
)
def test_invalid_input_exits_non_zero_and_enqueues_nothing(thugrq, connection, args, message):
    refused = thugrq("enqueue", *args)
    assert refused.returncode != 0
    assert message in refused.stderr
    assert refused.stdout == ""
    assert queued_jobs(connection) == 0


def test_useragent_error_lists_the_allowed_values(thugrq):
    refused = thugrq("enqueue", "--useragent", "nosuchua", "http://x.test/")
    assert "winxpie60" in refused.stderr and "win7ie90" in refused.stderr


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


def test_result_of_a_queued_job_says_so_and_exits_non_zero(thugrq):
    job_id = thugrq("enqueue", "http://a.test/", check=True).stdout.strip()
    shown = thugrq("result", job_id)
    assert shown.returncode == 1
    assert "still queued" in shown.stderr


def test_result_of_an_unknown_id_says_so_and_exits_non_zero(thugrq):
    shown = thugrq("result", "no-such-job")
    assert shown.returncode == 1
    assert "no job 'no-such-job'" in shown.stderr


def test_unreachable_redis_is_one_clear_line(thugrq, env):
    env = {**env, "THUGRQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    refused = thugrq("enqueue", "http://a.test/", env=env)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        refused.stderr.strip().splitlines()[0]
    ]
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_invalid_redis_url_is_refused_with_the_expected_form(thugrq):
    refused = thugrq("--redis-url", "http://127.0.0.1:6379", "queues")
    assert refused.returncode == 1
    assert "invalid Redis URL" in refused.stderr and "redis://" in refused.stderr


def test_redis_url_flag_wins_over_the_environment(thugrq, env, redis_url):
    env = {**env, "THUGRQ_REDIS_URL": "redis://127.0.0.1:1/0"}
    listed = thugrq("--redis-url", redis_url, "queues", env=env)
    assert listed.returncode == 0, listed.stderr


def test_queues_lists_counts(thugrq):
    thugrq("enqueue", "http://a.test/", "-q", "US", check=True)
    listed = thugrq("queues").stdout.splitlines()
    assert listed[0].split() == ["QUEUE", "QUEUED", "STARTED", "FINISHED", "FAILED"]
    assert listed[1].split() == ["US", "1", "0", "0", "0"]


def test_useragents_lists_thug_personalities(thugrq):
    listed = thugrq("useragents").stdout
    assert "winxpie60" in listed and "Internet Explorer 6.0 (Windows XP)" in listed
