"""A worker trusts nothing it dequeues, and a hostile page cannot escape its analysis."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from rq.webhook import Webhook

from tests.site import Site
from thugrq import sandbox
from thugrq.targets import Guard, Policy, TargetRefused, non_public_kind


@pytest.fixture
def refusing_env(env):
    """Workers started with this environment refuse private targets (the default)."""
    return {k: v for k, v in env.items() if k != "THUGRQ_ALLOW_PRIVATE_TARGETS"}


@pytest.fixture
def own_site():
    """A site of this test's own on 127.0.0.1, so its request log is this test's alone."""
    with Site() as running:
        yield running


def analyse(thugrq, burst_worker, url: str, *worker_args: str, env=None) -> dict:
    job_id = thugrq("enqueue", url, check=True, env=env).stdout.strip()
    burst_worker("--queue", "generic", *worker_args, env=env)
    shown = thugrq("result", job_id, "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


@pytest.mark.parametrize("allow", [False, True])
def test_activex_file_writes_never_leave_the_scratch_directory(thugrq, burst_worker, site, refusing_env, env, allow):
    name = f"thugrq-escape-{uuid.uuid4().hex}"
    environment = env if allow else refusing_env
    document = analyse(thugrq, burst_worker, site.url(f"/fso-write?name={name}"), env=environment)
    assert document["status"] == ("completed" if allow else "refused")
    assert not [p for p in Path("/tmp").iterdir() if p.name.startswith(name)]
    assert not [p for p in Path("/").iterdir() if p.name.startswith(name)]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_private_targets_are_refused_without_a_request(thugrq, burst_worker, own_site, refusing_env, host):
    url = f"http://{host}:{own_site.port}/activex"
    document = analyse(thugrq, burst_worker, url, env=refusing_env)
    assert document["status"] == "refused"
    assert "target refused" in document["error"] and "loopback" in document["error"]
    assert "--allow-private-targets" in document["error"]
    assert own_site.requests == []


@pytest.mark.parametrize("embed", ["redirect?to", "frame?src", "script?src"])
def test_allowed_network_cannot_reach_beyond_it(thugrq, burst_worker, own_site, refusing_env, embed):
    with Site(host="127.0.0.2") as allowed:
        target = own_site.url("/activex")
        page = allowed.url(f"/{embed}={target}")
        document = analyse(
            thugrq, burst_worker, page, "--allow-private-targets", "127.0.0.2/32", env=refusing_env
        )
    assert allowed.requests  # the allowed page was analysed
    assert own_site.requests == []  # nothing reached 127.0.0.1
    refused = document["summary"]["refused"]
    assert refused and refused[0]["address"] == "127.0.0.1" and refused[0]["port"] == own_site.port
    assert "loopback" in refused[0]["reason"]


def test_guard_holds_while_page_code_runs_past_the_deadline(thugrq, burst_worker, own_site, refusing_env):
    # The page catches the deadline's exception and loops on: the result is recorded while
    # its JavaScript still runs, and none of its requests may pass meanwhile.
    with Site(host="127.0.0.2") as allowed:
        page = allowed.url(f"/xhr-loop?to={own_site.url('/race')}")
        job_id = thugrq("enqueue", page, "--timeout", "2", check=True, env=refusing_env).stdout.strip()
        burst_worker("--queue", "generic", "--allow-private-targets", "127.0.0.2/32", env=refusing_env)
    document = json.loads(thugrq("result", job_id, "--json", env=refusing_env).stdout)
    assert document["status"] == "timeout"
    assert own_site.requests == []


def late_connections(port: int) -> list[str]:
    """In a forked process, as in a work horse: a thread started during a guarded analysis
    connects after it, and so does the worker's own thread. Returns who got through."""
    import multiprocessing

    def scenario(outcome) -> None:
        go = threading.Event()

        def connect(who: str) -> None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                outcome.put(f"{who} connected")
            except TargetRefused:
                outcome.put(f"{who} refused")

        with Guard(Policy(), []):
            page_thread = threading.Thread(target=lambda: (go.wait(10), connect("page")))
            page_thread.start()
        connect("worker")
        go.set()
        page_thread.join()

    context = multiprocessing.get_context("fork")
    outcome = context.Queue()
    process = context.Process(target=scenario, args=(outcome,))
    process.start()
    process.join(30)
    return sorted(outcome.get(timeout=5) for _ in range(2))


def test_guard_stays_up_for_threads_an_analysis_started(own_site):
    # Thug's async prefetch threads may still fetch when the analysis has returned.
    assert late_connections(own_site.port) == ["page refused", "worker connected"]


def test_worker_flag_allowing_all_private_targets(thugrq, burst_worker, own_site, refusing_env):
    document = analyse(thugrq, burst_worker, own_site.url("/activex"), "--allow-private-targets", env=refusing_env)
    assert document["status"] == "completed"


@pytest.mark.parametrize(
    "address, kind",
    [
        ("10.1.2.3", "private"), ("192.168.0.1", "private"), ("172.16.0.1", "private"),
        ("169.254.169.254", "link-local"), ("127.0.0.2", "loopback"), ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"), ("100.64.0.1", "shared (carrier-grade NAT)"), ("::1", "loopback"),
        ("fe80::1", "link-local"), ("fc00::1", "private"), ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "private"), ("64:ff9b::a9fe:a9fe", "link-local"),
        ("2002:7f00:1::", "loopback"), ("8.8.8.8", None), ("2a00:1450:4001::1", None),
    ],
)
def test_address_kinds(address, kind):
    import ipaddress

    assert non_public_kind(ipaddress.ip_address(address)) == kind


def test_allowance_lists_networks_and_refuses_the_rest():
    policy = Policy.parse("127.0.0.2/32, fd00::/8")
    assert policy.refusal("127.0.0.2") is None
    assert policy.refusal("::ffff:127.0.0.2") is None
    assert "loopback" in policy.refusal("127.0.0.1")
    assert policy.refusal("fd00::5") is None
    assert Policy.parse("1").refusal("10.0.0.1") is None
    assert Policy.parse("").refusal("10.0.0.1")
    with pytest.raises(ValueError, match="127.0.0.2/32"):
        Policy.parse("not-a-network")


def test_sandbox_refuses_and_records_writes_outside_its_root(tmp_path):
    root, outside = tmp_path / "scratch", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    blocked: list = []
    with sandbox.confine(str(root), blocked):
        (root / "inside.txt").write_text("fine")
        for attempt in (
            lambda: open(outside / "new.txt", "w"),
            lambda: open(root / ".." / "outside" / "new.txt", "a"),
            lambda: os.open(outside / "new.txt", os.O_CREAT | os.O_WRONLY),
            lambda: os.remove(outside / "keep.txt"),
            lambda: os.rename(outside / "keep.txt", root / "stolen.txt"),
            lambda: os.mkdir(outside / "dir"),
            lambda: os.symlink("/etc/passwd", outside / "link"),
        ):
            with pytest.raises(PermissionError):
                attempt()
        assert (outside / "keep.txt").read_text() == "keep"  # reading is fine
        import tempfile

        assert tempfile.gettempdir() == str(root)
    assert len(blocked) == 7
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    (outside / "after.txt").write_text("the sandbox ends with the analysis")


def test_webhooks_are_refused_and_never_sent(connection, burst_worker, thugrq, own_site):
    job = Queue("generic", connection=connection, serializer=JSONSerializer).enqueue(
        "thugrq.analysis.analyze", own_site.url("/activex"), {},
        webhooks=[Webhook(own_site.url("/hook"), "failed"), Webhook(own_site.url("/hook"), "finished")],
    )
    burst_worker("--queue", "generic")
    status = json.loads(thugrq("status", job.id, "--json").stdout)
    assert status["status"] == "failed" and "refused: job names a webhook" in status["reason"]
    assert own_site.requests == []


def test_dependencies_are_refused(connection, burst_worker, thugrq, site):
    queue = Queue("generic", connection=connection, serializer=JSONSerializer)
    first = queue.enqueue("thugrq.analysis.analyze", site.url("/chain/final"), {})
    burst_worker("--queue", "generic")
    second = queue.enqueue("thugrq.analysis.analyze", site.url("/activex"), {}, depends_on=first)
    burst_worker("--queue", "generic")
    status = json.loads(thugrq("status", second.id, "--json").stdout)
    assert status["status"] == "failed" and "dependencies" in status["reason"]


def test_oversized_job_data_is_refused(connection, burst_worker, thugrq, site):
    job = Queue("generic", connection=connection, serializer=JSONSerializer).enqueue(
        "thugrq.analysis.analyze", site.url("/activex"), {"padding": "x" * 200_000}
    )
    burst_worker("--queue", "generic")
    status = json.loads(thugrq("status", job.id, "--json").stdout)
    assert status["status"] == "failed" and "larger than" in status["reason"]
