"""A worker runs thugrq.analysis.analyze and nothing else, whatever was pushed into Redis."""

from __future__ import annotations

import json

import pytest
from rq import Callback, Queue
from rq.serializers import JSONSerializer

from thugrq import analysis


@pytest.fixture
def raw_queue(connection):
    """The generic queue as anyone with Redis access sees it: plain RQ, JSON jobs."""
    return Queue("generic", connection=connection, serializer=JSONSerializer)


@pytest.mark.parametrize(
    "func, argument",
    [
        ("os.system", "touch {marker}"),
        ("builtins.eval", "__import__('os').system('touch {marker}')"),
        ("subprocess.call", "touch {marker}"),
    ],
)
def test_foreign_function_ends_failed_as_refused_without_side_effect(
    raw_queue, burst_worker, thugrq, tmp_path, func, argument
):
    marker = tmp_path / "pwned"
    job = raw_queue.enqueue(func, argument.format(marker=marker))
    burst_worker()
    status = thugrq("status", job.id)
    assert "failed" in status.stdout
    assert f"job function '{func}' is not {analysis.ANALYZE}" in status.stdout
    assert not marker.exists()


@pytest.mark.parametrize("func", [analysis.ANALYZE, "thugrq.jobs.analyze"])
def test_analysis_runs_under_its_name_and_its_former_one(raw_queue, burst_worker, thugrq, site, func):
    # Jobs queued before thugrq.jobs was renamed thugrq.analysis name the function so.
    job = raw_queue.enqueue(func, site.url("/chain/final"), {})
    burst_worker()
    shown = thugrq("result", job.id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "completed"
    assert "/chain/final" in site.requests


def test_worker_goes_on_to_the_next_job_after_a_refusal(raw_queue, burst_worker, thugrq, site):
    refused = raw_queue.enqueue("os.system", "true")
    wanted = thugrq("enqueue", site.url("/chain/final"), check=True).stdout.strip()
    burst_worker()
    assert "failed" in thugrq("status", refused.id).stdout
    assert "finished" in thugrq("status", wanted).stdout


def test_job_with_a_callback_is_refused_and_the_callback_never_runs(
    raw_queue, burst_worker, thugrq, site, tmp_path
):
    marker = tmp_path / "callback-ran"
    job = raw_queue.enqueue(
        analysis.ANALYZE, site.url("/chain/final"), {},
        on_failure=Callback("os.system"), on_success=Callback("os.system"),
    )
    burst_worker()
    status = thugrq("status", job.id)
    assert "failed" in status.stdout and "refused: job names a callback" in status.stdout
    assert not marker.exists()


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("http://x.test/",), {}, "exactly (url, options)"),
        (("http://x.test/", {}), {"extra": 1}, "exactly (url, options)"),
        (("file:///etc/passwd", {}), {}, "invalid URL"),
        (("http://x.test/", {"logdir": "/tmp"}), {}, "unknown option(s) logdir"),
        (("http://x.test/", {"useragent": "../../etc"}), {}, "invalid useragent"),
        (("http://x.test/", {"timeout": "600"}), {}, "invalid timeout"),
    ],
)
def test_malformed_analysis_arguments_are_refused_by_the_worker(
    raw_queue, burst_worker, thugrq, args, kwargs, message
):
    job = raw_queue.enqueue(analysis.ANALYZE, *args, **kwargs)
    burst_worker()
    status = thugrq("status", job.id)
    assert "failed" in status.stdout
    assert message in status.stdout


def test_result_of_a_refused_job_exits_non_zero_with_the_reason(raw_queue, burst_worker, thugrq):
    job = raw_queue.enqueue("os.system", "true")
    burst_worker()
    shown = thugrq("result", job.id)
    assert shown.returncode == 1
    assert "failed" in shown.stderr and "refused" in shown.stderr
