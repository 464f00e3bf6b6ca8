"""No job lost, none run twice, nothing hangs: timeouts, crashes, lost workers, Redis, shutdown."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import psutil
import pytest
import redis
from rq import Queue, Worker
from rq.job import Retry
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.conftest import BIN, stop_all, wait_for, with_dns
from thugrq import deadline
from thugrq.process import free_port
from thugrq.redis_server import start_redis
from thugrq.job import ThugrqJob

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running


def job(connection, job_id: str) -> ThugrqJob:
    return ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)


def status(connection, job_id: str) -> str:
    return job(connection, job_id).get_status(refresh=True).value


def horse_of(worker: subprocess.Popen) -> psutil.Process:
    """The work horse a worker process has forked (and not its scheduler)."""
    def find():
        for child in psutil.Process(worker.pid).children():
            if "thugrq" in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                if child.ppid() == worker.pid and _is_horse(child):
                    return child
        return None

    return wait_for(find, timeout=60)


def _is_horse(process: psutil.Process) -> bool:
    # The horse is forked from the worker and has its own process group (os.setpgrp).
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


def successful_runs(connection, job_id: str) -> int:
    return sum(r.type == Result.Type.SUCCESSFUL for r in job(connection, job_id).results())


def test_infinite_loop_ends_as_timeout_and_the_worker_takes_the_next_job(thugrq, burst_worker, site, connection):
    looping = thugrq("enqueue", site.url("/infinite-loop"), "--timeout", "3", check=True).stdout.strip()
    following = thugrq("enqueue", site.url("/activex"), check=True).stdout.strip()
    started = time.monotonic()
    ran = burst_worker("--queue", "generic")
    assert ran.returncode == 0, ran.stderr
    document = json.loads(thugrq("result", looping, "--json").stdout)
    assert document["status"] == "timeout"
    assert "JavaScript never yielded" in document["error"]
    assert document["duration"] <= 3 + deadline.GRACE + 2
    assert document["summary"]["counts"]["code_snippets"] >= 1  # the partial log is kept
    assert status(connection, following) == "finished"
    assert time.monotonic() - started < 60


def test_server_that_never_answers_ends_as_timeout(thugrq, burst_worker, site):
    job_id = thugrq("enqueue", site.url("/slow?seconds=300"), "--timeout", "3", check=True).stdout.strip()
    burst_worker("--queue", "generic")
    document = json.loads(thugrq("result", job_id, "--json").stdout)
    assert document["status"] == "timeout"
    assert document["duration"] <= 3 + deadline.GRACE + 2


def test_crashed_horse_is_retried_then_fails_with_the_reason(thugrq, background_worker, site, connection):
    """Killed (SIGKILL: the OOM killer, an operator), then crashing (SIGSEGV: a bug in the
    JavaScript engine): the one retry is used, and the failure names the last crash."""
    job_id = thugrq(
        "enqueue", site.url("/paced?seconds=30"), "--timeout", "60", "--retries", "1", check=True
    ).stdout.strip()
    worker = background_worker("--queue", "generic")
    for crash in (signal.SIGKILL, signal.SIGSEGV):
        horse = horse_of(worker)
        wait_for(lambda: status(connection, job_id) == "started")
        horse.send_signal(crash)
        horse.wait(timeout=10)
        if crash == signal.SIGKILL:
            wait_for(lambda: status(connection, job_id) in ("scheduled", "queued", "started"))
    wait_for(lambda: status(connection, job_id) == "failed", timeout=30)
    reason = json.loads(thugrq("status", job_id, "--json").stdout)["reason"]
    assert "Work-horse terminated unexpectedly" in reason and f"signal {int(signal.SIGSEGV)}" in reason
    assert job(connection, job_id).retries_left == 0  # the one retry was used


def test_refused_job_is_not_retried(connection, burst_worker):
    refused = Queue("generic", connection=connection, serializer=JSONSerializer).enqueue(
        "os.system", "true", retry=Retry(max=3, interval=1)
    )
    burst_worker("--queue", "generic")
    assert status(connection, refused.id) == "failed"
    assert [r.type for r in job(connection, refused.id).results()] == [Result.Type.FAILED]


def test_horse_and_scheduler_die_with_their_worker(thugrq, background_worker, site, connection):
    job_id = thugrq("enqueue", site.url("/paced?seconds=30"), "--timeout", "60", check=True).stdout.strip()
    worker = background_worker("--queue", "generic")
    horse = horse_of(worker)
    wait_for(lambda: status(connection, job_id) == "started")
    children = psutil.Process(worker.pid).children()
    assert len(children) == 2  # the horse and RQ's scheduler
    worker.kill()
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [] and horse.pid in {p.pid for p in gone}


def test_job_of_a_killed_worker_finishes_on_another_within_a_minute(
    thugrq, background_worker, site, connection
):
    job_id = thugrq("enqueue", site.url("/paced?seconds=8"), "--timeout", "60", check=True).stdout.strip()
    first = background_worker("--queue", "generic", "--name", "first")
    horse = horse_of(first)
    wait_for(lambda: status(connection, job_id) == "started")
    background_worker("--queue", "generic", "--name", "second")
    wait_for(lambda: len(Worker.all(connection=connection)) == 2)
    first.kill()
    horse.kill()
    killed = time.monotonic()
    wait_for(lambda: status(connection, job_id) == "finished", timeout=90, interval=0.5)
    assert time.monotonic() - killed < 60
    document = json.loads(thugrq("result", job_id, "--json").stdout)
    assert document["worker"]["name"] == "second"
    assert successful_runs(connection, job_id) == 1


def test_first_sigterm_lets_the_job_finish_then_the_worker_exits(thugrq, background_worker, site, connection):
    job_id = thugrq("enqueue", site.url("/paced?seconds=3"), "--timeout", "60", check=True).stdout.strip()
    worker = background_worker("--queue", "generic")
    wait_for(lambda: status(connection, job_id) == "started")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    assert status(connection, job_id) == "finished"


def test_second_sigterm_stops_at_once_and_requeues_the_job(
    thugrq, background_worker, burst_worker, site, connection
):
    job_id = thugrq("enqueue", site.url("/paced?seconds=30"), "--timeout", "60", check=True).stdout.strip()
    worker = background_worker("--queue", "generic")
    horse = horse_of(worker)
    wait_for(lambda: status(connection, job_id) == "started")
    worker.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # RQ ignores a second signal within one second of the first
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=20)
    assert not horse.is_running()
    assert status(connection, job_id) == "queued"
    assert job_id in Queue("generic", connection=connection, serializer=JSONSerializer).job_ids


def test_worker_rides_out_a_redis_restart(tmp_path, env, thugrq, background_worker, site):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    environment = with_dns({**env, "THUGRQ_REDIS_URL": url})
    server = start_redis(port, tmp_path / "redis", persist=False)
    try:
        background_worker("--queue", "generic", environment=environment)
        wait_for(lambda: Worker.all(connection=redis.Redis.from_url(url)))
        server.terminate()
        server.wait(timeout=10)
        refused = thugrq("enqueue", site.url("/activex"), env=environment)
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1 and url in refused.stderr
        server = start_redis(port, tmp_path / "redis", persist=False)
        job_id = thugrq("enqueue", site.url("/activex"), env=environment, check=True).stdout.strip()
        wait_for(
            lambda: json.loads(thugrq("status", job_id, "--json", env=environment).stdout)["status"]
            == "finished",
            timeout=60,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_accounting_under_chaos_nothing_lost_nothing_run_twice(thugrq, env, site, connection):
    """60 jobs over 3 workers while random workers and horses are SIGKILLed and restarted."""
    urls = [site.url(f"/paced?seconds=1&n={n}") for n in range(60)]
    enqueued = thugrq("enqueue", "-f", "-", "--timeout", "60", input="\n".join(urls), check=True)
    job_ids = enqueued.stdout.split()
    assert len(job_ids) == 60

    def start(n: int) -> subprocess.Popen:
        return subprocess.Popen(
            [str(BIN / "thugrq-worker"), "--queue", "generic", "--name", f"chaos-{n}-{time.time()}"],
            env=with_dns(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    workers = [start(n) for n in range(3)]
    chaos = random.Random(20261127)
    final = {"finished", "failed"}
    deadline_at = time.monotonic() + 240
    kills = 0
    try:
        while time.monotonic() < deadline_at:
            states = [status(connection, job_id) for job_id in job_ids]
            if all(state in final for state in states):
                break
            time.sleep(chaos.uniform(1.0, 3.0))
            if kills < 12:
                victim = chaos.randrange(len(workers))
                target = workers[victim]
                children = [c for c in psutil.Process(target.pid).children() if _is_horse(c)]
                if children and chaos.random() < 0.5:
                    children[0].kill()  # a horse crash
                else:
                    target.kill()  # a lost host: worker and horse die together
                    for child in children:
                        child.kill()
                    target.wait()
                    workers[victim] = start(victim + 3 * kills)
                kills += 1
    finally:
        stop_all(workers)
    states = {job_id: status(connection, job_id) for job_id in job_ids}
    results = {job_id: job(connection, job_id).results() for job_id in job_ids}
    finished = sum(state == "finished" for state in states.values())
    failed = [j for j, state in states.items() if state == "failed"]
    lost = [j for j, state in states.items() if state not in final]
    duplicated = [j for j in job_ids if sum(r.type == Result.Type.SUCCESSFUL for r in results[j]) > 1]
    retried = sum(2 - (job(connection, j).retries_left or 0) for j in job_ids)
    print(
        f"\nsubmitted {len(job_ids)} / finished {finished} / retried {retried} / "
        f"failed {len(failed)} / lost {len(lost)} / duplicated {len(duplicated)} ({kills} kills)"
    )
    assert lost == [] and duplicated == []
    for job_id in failed:
        assert json.loads(thugrq("status", job_id, "--json").stdout)["reason"]
