"""Fan-out, files, atomic batches, options on both sides, groups, waiting and export."""

from __future__ import annotations

import json

from rq.serializers import JSONSerializer

from thugrq.job import ThugrqJob
from thugrq.personalities import PERSONALITIES
from thugrq.queue import ThugrqQueue


def queued(connection) -> dict[str, int]:
    return {queue.name: queue.count for queue in ThugrqQueue.all(connection=connection)}


def test_fan_out_is_urls_x_queues_x_personalities_in_one_transaction(thugrq, connection, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text("# feed of the day\nhttp://a.test/\n\nhttp://b.test/x\n  http://c.test/?q=1  \n")
    connection.config_resetstat()
    enqueued = thugrq(
        "enqueue", "--url-file", str(urls), "--country", "IT", "--country", "US", "--generic",
        "--all-useragents",
    )
    assert enqueued.returncode == 0, enqueued.stderr
    per_queue = 3 * len(PERSONALITIES)
    assert len(enqueued.stdout.split()) == 3 * per_queue
    assert queued(connection) == {"IT": per_queue, "US": per_queue, "generic": per_queue}
    assert connection.info("commandstats")["cmdstat_exec"]["calls"] == 1


def test_urls_come_from_stdin_with_a_dash(thugrq, env, connection):
    enqueued = thugrq("enqueue", "-f", "-", input="http://a.test/\nhttp://b.test/\n")
    assert enqueued.returncode == 0, enqueued.stderr
    assert queued(connection) == {"generic": 2}


def test_json_lines_describe_each_job_and_its_group(thugrq):
    enqueued = thugrq("enqueue", "http://a.test/", "-u", "win7ie90", "-u", "winxpie60", "--json")
    rows = [json.loads(line) for line in enqueued.stdout.splitlines()]
    assert {row["useragent"] for row in rows} == {"win7ie90", "winxpie60"}
    assert len({row["group"] for row in rows}) == 1
    assert rows[0]["group"] in enqueued.stderr


def test_options_travel_with_the_job(thugrq, connection):
    job_id = thugrq(
        "enqueue", "http://a.test/", "--proxy", "socks5h://127.0.0.1:9050", "--events",
        "click,MouseOver", "--delay", "500", "--no-javaplugin", "--shockwave", "11.0.1.152",
        "--no-cert-logging", check=True,
    ).stdout.strip()
    job = ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    options = job.args[1]
    assert options["proxy"] == "socks5h://127.0.0.1:9050"
    assert options["events"] == ["click", "mouseover"]
    assert (options["delay"], options["no_javaplugin"], options["shockwave"]) == (500, True, "11.0.1.152")
    assert options["cert_logging"] is False and options["code_logging"] is True


def test_dedupe_returns_the_existing_job_within_the_window(thugrq, connection):
    first = thugrq("enqueue", "http://a.test/", "--dedupe", "600", check=True).stdout.split()
    again = thugrq("enqueue", "http://a.test/", "http://b.test/", "--dedupe", "600", check=True)
    assert again.stdout.split()[0] == first[0]
    assert "reused 1" in again.stderr
    assert queued(connection) == {"generic": 2}
    other = thugrq("enqueue", "http://a.test/", "--dedupe", "600", "-u", "win7ie90", check=True)
    assert other.stdout.split() != first


def test_at_front_puts_urgent_work_first(thugrq, connection):
    thugrq("enqueue", "http://later.test/", check=True)
    urgent = thugrq("enqueue", "http://urgent.test/", "--at-front", check=True).stdout.strip()
    assert ThugrqQueue("generic", connection=connection).job_ids[0] == urgent


def test_result_ttl_and_job_timeout_are_set_on_the_job(thugrq, connection):
    job_id = thugrq(
        "enqueue", "http://a.test/", "--result-ttl", "3600", "--job-timeout", "999", check=True
    ).stdout.strip()
    job = ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    assert (job.result_ttl, job.failure_ttl, job.timeout) == (3600, 3600, 999)


def test_options_lists_every_option_with_type_and_default(thugrq):
    rows = [json.loads(line) for line in thugrq("options", "--json").stdout.splitlines()]
    by_name = {row["name"]: row for row in rows}
    assert by_name["timeout"]["type"] == "integer" and by_name["timeout"]["default"] == 300
    assert by_name["cert_logging"] == {
        "name": "cert_logging", "type": "boolean", "default": True,
        "help": by_name["cert_logging"]["help"],
    }
    assert not {"logdir", "output", "local", "mongodb_address"} & set(by_name)


def test_options_altered_in_redis_are_refused_by_the_worker(thugrq, connection, burst_worker):
    job_id = thugrq("enqueue", "http://a.test/", check=True).stdout.strip()
    job = ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    job.args = (job.args[0], {**job.args[1], "threshold": "all"})
    job.save()
    other = thugrq("enqueue", "http://b.test/", check=True).stdout.strip()
    job = ThugrqJob.fetch(other, connection=connection, serializer=JSONSerializer)
    job.args = (job.args[0], {**job.args[1], "logdir": "/etc"})
    job.save()
    burst_worker("--queue", "generic")
    assert "invalid threshold 'all'" in thugrq("status", job_id).stdout
    assert "unknown option(s) logdir" in thugrq("status", other).stdout


def test_group_reports_what_each_personality_saw_differently(thugrq, burst_worker, site):
    enqueued = thugrq(
        "enqueue", site.url("/cloak"), "-u", "winxpie60", "-u", "win7chrome49", "--json", check=True
    )
    group = json.loads(enqueued.stdout.splitlines()[0])["group"]
    burst_worker("--queue", "generic")
    report = json.loads(thugrq("group", group, "--json").stdout)
    assert [job["status"] for job in report["jobs"]] == ["completed", "completed"]
    aspects = {d["aspect"]: d["seen"] for d in report["differences"]}
    assert set(aspects) >= {"final URL", "exploits"}
    assert aspects["exploits"] == {
        "WScript.Shell ActiveX": ["generic/winxpie60"], "none": ["generic/win7chrome49"],
    }
    assert aspects["final URL"][site.url("/activex")] == ["generic/winxpie60"]
    text = thugrq("group", group).stdout
    assert "DIFFERENT exploits for " + site.url("/cloak") in text


def test_group_of_identical_analyses_reports_no_difference(thugrq, burst_worker, site):
    enqueued = thugrq("enqueue", site.url("/chain/final"), "-c", "IT", "--generic", "--json", check=True)
    group = json.loads(enqueued.stdout.splitlines()[0])["group"]
    burst_worker("--queue", "IT", "--queue", "generic")
    assert json.loads(thugrq("group", group, "--json").stdout)["differences"] == []
    assert "No differences" in thugrq("group", group).stdout


def test_wait_json_exits_zero_when_all_complete_and_non_zero_when_one_fails(
    thugrq, burst_worker, site, connection
):
    good = thugrq("enqueue", site.url("/chain/final"), check=True).stdout.strip()
    burst_worker("--queue", "generic")
    waited = thugrq("wait", good, "--json")
    assert waited.returncode == 0 and json.loads(waited.stdout)["status"] == "completed"
    from rq import Queue

    bad = Queue("generic", connection=connection, serializer=JSONSerializer).enqueue("os.system", "true")
    burst_worker("--queue", "generic")
    waited = thugrq("wait", good, bad.id, "--json")
    assert waited.returncode == 1
    statuses = [json.loads(line)["status"] for line in waited.stdout.splitlines()]
    assert statuses == ["completed", "failed"]


def test_enqueue_wait_json_fails_when_an_analysis_times_out(thugrq, env, site):
    import subprocess

    from tests.conftest import BIN, with_dns

    worker = subprocess.Popen([str(BIN / "thugrq-worker"), "--queue", "generic"], env=with_dns(env),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        waited = thugrq("enqueue", site.url("/slow-script"), "--timeout", "2", "--wait", "--json")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert waited.returncode == 1
    assert json.loads(waited.stdout)["status"] == "timeout"


def test_export_writes_one_document_per_finished_job(thugrq, burst_worker, site, tmp_path):
    enqueued = thugrq("enqueue", site.url("/activex"), site.url("/download"), "--json", check=True)
    group = json.loads(enqueued.stdout.splitlines()[0])["group"]
    burst_worker("--queue", "generic")
    exported = thugrq("export", "--group", group, "-o", str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    files = sorted((tmp_path / "out").glob("*.json"))
    assert len(files) == 2
    assert {json.loads(f.read_text())["schema"] for f in files} == {"thugrq.result/1"}


def test_export_names_jobs_without_a_result_and_exits_non_zero(thugrq, tmp_path):
    job_id = thugrq("enqueue", "http://a.test/", check=True).stdout.strip()
    exported = thugrq("export", job_id, "-o", str(tmp_path))
    assert exported.returncode == 1 and "the job is queued" in exported.stderr
