"""The whole path on real parts: thugrq enqueue -> Redis -> thugrq-worker -> Thug -> result."""

from __future__ import annotations

import json

import pytest

from thugrq.results import SCHEMA


def enqueue_and_analyse(thugrq, burst_worker, *args: str) -> dict:
    enqueued = thugrq("enqueue", *args, check=True)
    (job_id,) = enqueued.stdout.split()
    worker = burst_worker()
    assert worker.returncode == 0, worker.stderr
    shown = thugrq("result", job_id, "--json")
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_activex_abuse_is_reported_as_an_exploit(thugrq, burst_worker, site):
    document = enqueue_and_analyse(thugrq, burst_worker, site.url("/activex"))
    assert document["schema"] == SCHEMA
    assert document["status"] == "completed"
    modules = [exploit["module"] for exploit in document["summary"]["exploits"]]
    assert "WScript.Shell ActiveX" in modules


def test_obfuscated_script_is_unpacked_and_its_exploit_reported(thugrq, burst_worker, site):
    document = enqueue_and_analyse(thugrq, burst_worker, site.url("/obfuscated"))
    exploits = document["summary"]["exploits"]
    assert [e["module"] for e in exploits] == ["WScript.Shell ActiveX"]


def test_redirect_chain_lists_every_hop_in_order(thugrq, burst_worker, site):
    document = enqueue_and_analyse(thugrq, burst_worker, site.url("/chain/start"))
    summary = document["summary"]
    assert summary["final_url"] == site.url("/chain/final")
    assert summary["redirect_chain"] == [
        {"url": site.url("/chain/start"), "via": None},
        {"url": site.url("/chain/meta"), "via": "http-redirect"},
        {"url": site.url("/chain/js"), "via": "meta"},
        {"url": site.url("/chain/final"), "via": "href"},
    ]


def test_downloaded_pe_is_a_sample_with_hashes_and_type(thugrq, burst_worker, site):
    import hashlib

    from tests.site import pe_sample

    document = enqueue_and_analyse(thugrq, burst_worker, site.url("/download"))
    (sample,) = document["summary"]["samples"]
    assert sample["type"] == "PE"
    assert sample["md5"] == hashlib.md5(pe_sample()).hexdigest()
    assert sample["sha256"] == hashlib.sha256(pe_sample()).hexdigest()
    assert sample["size"] == len(pe_sample())


def test_result_records_options_worker_and_thug_versions(thugrq, burst_worker, site):
    document = enqueue_and_analyse(
        thugrq, burst_worker, site.url("/chain/final"), "--useragent", "win7ie90",
        "--referer", "http://referrer.test/", "--timeout", "60",
    )
    assert document["options"]["useragent"] == "win7ie90"
    assert document["options"]["referer"] == "http://referrer.test/"
    assert document["options"]["timeout"] == 60
    assert document["worker"]["name"]
    assert document["thug"]["version"] == "6.22"
    assert document["thug"]["jsengine"] == "Google V8"
    assert document["duration"] >= 0


def test_huge_page_is_capped_in_the_stored_log(thugrq, burst_worker, site):
    document = enqueue_and_analyse(thugrq, burst_worker, site.url("/huge"))
    assert document["status"] == "completed"
    assert document["truncated"]["log.locations"]["characters"] > 0
    assert len(json.dumps(document)) < 1024 * 1024


def test_analysis_over_its_timeout_ends_as_timeout_with_reason(thugrq, burst_worker, site):
    document = enqueue_and_analyse(
        thugrq, burst_worker, site.url("/slow-script"), "--timeout", "3"
    )
    assert document["status"] == "timeout"
    assert "3 s" in document["error"]
    assert document["duration"] < 30


def test_human_summary_names_the_exploit(thugrq, burst_worker, site):
    enqueued = thugrq("enqueue", site.url("/activex"), check=True)
    burst_worker()
    shown = thugrq("result", enqueued.stdout.strip())
    assert shown.returncode == 0
    assert "WScript.Shell ActiveX" in shown.stdout
    assert "completed" in shown.stdout


@pytest.mark.parametrize("as_json", [False, True])
def test_enqueue_wait_prints_each_outcome(thugrq, env, site, as_json):
    import subprocess
    from tests.conftest import BIN

    worker = subprocess.Popen([str(BIN / "thugrq-worker")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        args = ["enqueue", site.url("/activex"), "--wait"] + (["--json"] if as_json else [])
        waited = thugrq(*args)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert waited.returncode == 0, waited.stderr
    if as_json:
        row = json.loads(waited.stdout)
        assert row["status"] == "completed" and row["exploits"] == 1
    else:
        header, row = waited.stdout.splitlines()
        assert header.split()[:6] == ["ID", "STATUS", "QUEUE", "USERAGENT", "EXPLOITS", "SAMPLES"]
        assert row.split()[1:6] == ["completed", "generic", "winxpie60", "1", "0"]
