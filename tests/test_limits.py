"""What one analysis may take is bounded: bytes downloaded, memory, and runs of a crashing job."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from tests.conftest import BIN, wait_for, with_dns
from tests.test_reliability import horse_of, job, status
from thugrq.defaults import MIB
from thugrq.limits import CHUNK
from thugrq.options import Options

HUGE = 100 * MIB


def peak_rss_of_burst_worker(env: dict[str, str]) -> int:
    """Run a burst worker on `generic`; the largest RSS (bytes) of it and its horses."""
    measure = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", measure, str(BIN / "thugrq-worker"), "--burst", "--queue", "generic"],
        env=with_dns(env), capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    return int(ran.stdout.split()[-1]) * 1024  # ru_maxrss is in KiB on Linux


def test_downloads_are_capped_per_response_and_in_total(thugrq, site, env):
    huge = thugrq("enqueue", site.url(f"/stream?bytes={HUGE}"), "--timeout", "30", check=True)
    framed = site.url("/frame?src=/stream?bytes=600000")
    total = thugrq("enqueue", framed, "--max-download-bytes", "500000", check=True)
    peak = peak_rss_of_burst_worker(env)
    default = Options().max_response_bytes
    document = json.loads(thugrq("result", huge.stdout.strip(), "--json").stdout)
    assert document["status"] == "completed"
    [limited] = document["summary"]["limited"]
    assert limited["url"].endswith(f"/stream?bytes={HUGE}")
    assert default < limited["received"] <= default + CHUNK
    assert "max_response_bytes" in limited["reason"]
    assert peak < 400 * MIB  # a horse reading the whole 100 MB reached 796 MB
    document = json.loads(thugrq("result", total.stdout.strip(), "--json").stdout)
    [limited] = document["summary"]["limited"]
    assert limited["url"].endswith("/stream?bytes=600000")
    assert "max_download_bytes" in limited["reason"]


def test_memory_bombs_fail_as_memory_limit_and_are_not_retried(thugrq, burst_worker, site, connection):
    bombs = [
        thugrq("enqueue", site.url(page), "--timeout", "60", check=True).stdout.strip()
        for page in ("/js-bomb", "/dom-bomb")
    ]
    following = thugrq("enqueue", site.url("/activex"), check=True).stdout.strip()
    ran = burst_worker("--queue", "generic")
    assert ran.returncode == 0, ran.stderr
    for job_id in bombs:
        reason = json.loads(thugrq("status", job_id, "--json").stdout)["reason"]
        assert reason.startswith("memory limit exceeded") and "--max-memory 2048 MiB" in reason
        assert status(connection, job_id) == "failed"  # not scheduled for a retry
        assert job(connection, job_id).retries_left == 2
    assert status(connection, following) == "finished"


def test_crash_with_the_same_cause_runs_at_most_twice(thugrq, background_worker, site, connection):
    job_id = thugrq(
        "enqueue", site.url("/paced?seconds=30"), "--timeout", "60", "--retries", "2", check=True
    ).stdout.strip()
    worker = background_worker("--queue", "generic")
    for attempt in range(2):
        wait_for(lambda: status(connection, job_id) == "started", timeout=60)
        horse = horse_of(worker)
        horse.send_signal(signal.SIGSEGV)
        horse.wait(timeout=10)
        if attempt == 0:
            wait_for(lambda: status(connection, job_id) != "started", timeout=30)
    wait_for(lambda: status(connection, job_id) == "failed", timeout=30)
    reason = json.loads(thugrq("status", job_id, "--json").stdout)["reason"]
    assert f"signal {int(signal.SIGSEGV)}" in reason
    assert job(connection, job_id).retries_left == 1  # the second retry was not used
