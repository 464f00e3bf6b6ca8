"""The command line points at the dashboard's analyst pages (thugrq.links): `thugrq result`,
`group`, `enqueue` (with and without --wait), `wait --group` and `./bin/run` print the page's
address when a dashboard is known (THUGRQ_DASHBOARD_URL, or the local stack's running
dashboard serving the Redis in use), and nothing when none is; `--json` lines of a group's
jobs carry the group's id.

In this process, through click's CliRunner on the private Redis; the jobs are ended as a
worker ends them (its own success path), without Thug.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from rq.utils import now

from tests.collected import finish
from tests.test_cli_runner import assert_refused
from thugrq import links, stack
from thugrq.cli import main
from thugrq.cli import run as run_command
from thugrq.exceptions import ConfigError
from thugrq.queue import ThugrqQueue
from thugrq.worker import ThugrqWorker

BASE = "http://dash.example:9181"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A THUGRQ_HOME of the test's own: no local stack unless the test makes one."""
    return tmp_path / "thugrq-home"


@pytest.fixture
def thugrq(redis_url: str, home: Path):
    """`thugrq ARGS...` in this process on the private Redis, no dashboard configured."""

    def run(*args: str, env: dict[str, str | None] | None = None) -> Result:
        environment = {
            "THUGRQ_REDIS_URL": redis_url, "REDIS_URL": None, "THUGRQ_HOME": str(home),
            links.DASHBOARD_URL_VARIABLE: None, **(env or {}),
        }
        return CliRunner().invoke(main, args, prog_name="thugrq", env=environment)

    return run


DASHBOARD = {links.DASHBOARD_URL_VARIABLE: BASE + "/"}


def complete(connection: redis.Redis, worker: ThugrqWorker, count: int, timeout: float = 30) -> None:
    """End the next `count` jobs of `generic` as completed, as a worker's success path does."""
    queue = ThugrqQueue("generic", connection=connection)
    deadline = time.monotonic() + timeout
    while count and time.monotonic() < deadline:
        found = ThugrqQueue.dequeue_any(
            [queue], None, connection=connection, job_class=worker.job_class,
            serializer=worker.serializer,
        )
        if found is None:
            time.sleep(0.05)
            continue
        job, origin = found
        execution = worker.prepare_execution(job)
        job.started_at = job.ended_at = now()
        job._result = {"schema": "thugrq.result/1", "status": "completed", "url": job.args[0],
                       "summary": {"final_url": job.args[0]}}
        worker.handle_job_success(job, origin, job.started_job_registry, execution)
        count -= 1


@contextmanager
def completing(connection: redis.Redis, count: int) -> Iterator[None]:
    """While the block runs, a thread ends the `count` jobs it enqueues on `generic`."""
    worker = ThugrqWorker(["generic"], connection=connection, name="simulated")
    thread = threading.Thread(target=complete, args=(connection, worker, count), daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=60)


@pytest.mark.parametrize(
    "value, base",
    [
        ("http://dash.example:9181/", "http://dash.example:9181"),
        ("https://dash.example/analysts/", "https://dash.example/analysts"),
        ("http://[::1]:9181", "http://[::1]:9181"),
    ],
)
def test_a_dashboard_url_is_its_base_without_the_slash(value, base):
    assert links.check_dashboard_url(value) == base
    assert links.job_page(base, "a/b") == f"{base}/thugrq/job/a%2Fb"
    assert links.group_page(base, "g1") == f"{base}/thugrq/group/g1"


@pytest.mark.parametrize(
    "value, message",
    [
        ("dash.example:9181", "give the dashboard's address"),
        ("ftp://dash.example/", "give the dashboard's address"),
        ("http://analyst:secret@dash.example/", "credentials do not belong in it"),
        ("http://dash.example/?x=1", "no query or fragment"),
        ("http://dash.example:99999/", "invalid THUGRQ_DASHBOARD_URL"),
        ("http://dash example/", "it contains spaces"),
    ],
)
def test_a_dashboard_url_that_is_no_address_is_refused(value, message):
    with pytest.raises(ConfigError, match="invalid THUGRQ_DASHBOARD_URL") as refused:
        links.check_dashboard_url(value)
    assert message in str(refused.value)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    """A process whose command line names the stack's dashboard module (as the stack's does)."""
    process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", stack.DASHBOARD_MODULE]
    )
    yield process
    process.kill()
    process.wait(timeout=10)


def local_stack(home: Path, redis_url: str, pid: int, port: int = 9444) -> str:
    """State files as `thugrq up` leaves them: a dashboard (process `pid`) serving `redis_url`."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "stack.url").write_text(redis_url + "\n")
    (home / "dashboard.url").write_text(f"http://127.0.0.1:{port}/\n")
    (home / "dashboard.pid").write_text(f"{pid}\n")
    return f"http://127.0.0.1:{port}"


def test_the_local_stacks_running_dashboard_is_known_for_its_own_redis_only(
    home, redis_url, sleeper, monkeypatch
):
    monkeypatch.setenv("THUGRQ_HOME", str(home))
    monkeypatch.delenv(links.DASHBOARD_URL_VARIABLE, raising=False)
    assert links.dashboard_base(redis_url) is None  # no stack at all
    base = local_stack(home, redis_url, sleeper.pid)
    assert links.dashboard_base(redis_url) == base
    assert links.dashboard_base("redis://127.0.0.1:6379/0") is None  # another Redis
    monkeypatch.setenv(links.DASHBOARD_URL_VARIABLE, BASE)
    assert links.dashboard_base(redis_url) == BASE  # the setting wins
    monkeypatch.delenv(links.DASHBOARD_URL_VARIABLE)
    sleeper.kill()
    sleeper.wait(timeout=10)
    assert links.dashboard_base(redis_url) is None  # the dashboard is gone


def test_result_names_the_jobs_page_on_the_local_stacks_dashboard(
    thugrq, connection, home, redis_url, sleeper
):
    job_id = finish(connection, 1).jobs[0].id
    base = local_stack(home, redis_url, sleeper.pid)
    shown = thugrq("result", job_id)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[-1] == f"Page         {base}/thugrq/job/{job_id}"


def test_result_names_the_jobs_page_on_the_configured_dashboard(thugrq, connection):
    job_id = finish(connection, 1).jobs[0].id
    shown = thugrq("result", job_id, env=DASHBOARD)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0].startswith("URL          http://h0.test/")
    assert shown.stdout.splitlines()[-1] == f"Page         {BASE}/thugrq/job/{job_id}"
    document = json.loads(thugrq("result", job_id, "--json", env=DASHBOARD).stdout)
    assert document["page_url"] == f"{BASE}/thugrq/job/{job_id}"
    assert document["schema"] == "thugrq.result/1"


def test_without_a_dashboard_no_page_is_named(thugrq, connection):
    submission = finish(connection, 1)
    job_id = submission.jobs[0].id
    assert "Page" not in thugrq("result", job_id).stdout
    assert "page_url" not in json.loads(thugrq("result", job_id, "--json").stdout)
    assert "Page" not in thugrq("group", submission.group).stdout
    assert "page_url" not in json.loads(thugrq("group", submission.group, "--json").stdout)
    enqueued = thugrq("enqueue", "http://a.test/")
    assert "group page" not in enqueued.stderr


def test_an_invalid_dashboard_url_is_one_line(thugrq, connection):
    job_id = finish(connection, 1).jobs[0].id
    refused = thugrq("result", job_id, env={links.DASHBOARD_URL_VARIABLE: "dash.example"})
    assert_refused(refused, "invalid THUGRQ_DASHBOARD_URL 'dash.example'")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_an_invalid_dashboard_url_refuses_an_enqueue_before_anything_is_written(
    thugrq, connection
):
    refused = thugrq("enqueue", "http://a.test/", env={links.DASHBOARD_URL_VARIABLE: "ftp://d/"})
    assert_refused(refused, "invalid THUGRQ_DASHBOARD_URL")
    assert connection.dbsize() == 0


def test_group_names_its_page(thugrq, connection):
    group = finish(connection, 2).group
    shown = thugrq("group", group, env=DASHBOARD)
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1] == f"Page: {BASE}/thugrq/group/{group}"
    document = json.loads(thugrq("group", group, "--json", env=DASHBOARD).stdout)
    assert document["page_url"] == f"{BASE}/thugrq/group/{group}"
    assert document["page"]["total"] == 2  # which jobs were listed, as before


def test_enqueue_names_the_groups_page_on_stderr_and_its_json_the_group(thugrq):
    enqueued = thugrq("enqueue", "http://a.test/", "http://b.test/", "--json", env=DASHBOARD)
    assert enqueued.exit_code == 0, enqueued.output
    rows = [json.loads(line) for line in enqueued.stdout.splitlines()]
    (group,) = {row["group"] for row in rows}
    assert len(rows) == 2
    assert f"group page: {BASE}/thugrq/group/{group}\n" in enqueued.stderr


def test_enqueue_wait_json_lines_carry_the_group_and_stderr_its_page(thugrq, connection):
    with completing(connection, 2):
        waited = thugrq(
            "enqueue", "http://a.test/", "http://b.test/", "--wait", "--json", env=DASHBOARD
        )
    assert waited.exit_code == 0, waited.output
    rows = [json.loads(line) for line in waited.stdout.splitlines()]
    assert [row["status"] for row in rows] == ["completed", "completed"]
    (group,) = {row["group"] for row in rows}
    assert f"in group {group}\n" in waited.stderr
    assert f"group page: {BASE}/thugrq/group/{group}\n" in waited.stderr
    assert "page" not in waited.stdout


def test_enqueue_wait_text_keeps_stdout_to_the_job_lines(thugrq, connection):
    with completing(connection, 1):
        waited = thugrq("enqueue", "http://a.test/", "--wait", env=DASHBOARD)
    assert waited.exit_code == 0, waited.output
    header, row = waited.stdout.splitlines()
    assert header.startswith("ID ") and " completed " in row
    assert "/thugrq/group/" in waited.stderr


def test_wait_group_json_lines_carry_the_group_and_stderr_its_page(thugrq, connection):
    group = finish(connection, 2).group
    waited = thugrq("wait", "--group", group, "--json", env=DASHBOARD)
    assert waited.exit_code == 0, waited.output
    assert {json.loads(line)["group"] for line in waited.stdout.splitlines()} == {group}
    assert f"group page: {BASE}/thugrq/group/{group}\n" in waited.stderr


def test_bin_run_names_the_analysis_page(redis_url, home, connection, monkeypatch):
    """`./bin/run` on a configured Redis, its job ended by a stand-in worker: the analysis page
    on the configured dashboard (the local stack's own: tests/test_local.py)."""
    monkeypatch.setattr(
        run_command, "destination", lambda local_worker: run_command.Destination(redis_url, None)
    )
    environment = {"THUGRQ_REDIS_URL": redis_url, "REDIS_URL": None, "THUGRQ_HOME": str(home),
                   **DASHBOARD}
    with completing(connection, 1):
        ran = CliRunner().invoke(run_command.main, ["http://a.test/"], env=environment)
    assert ran.exit_code == 0, ran.output
    job_id = re.search(r"^job (\S+) on ", ran.stderr, re.M)[1]
    assert f"analysis page: {BASE}/thugrq/job/{job_id}\n" in ran.stderr
    assert f"dashboard: {BASE}/0/view/job/{job_id}\n" in ran.stderr
