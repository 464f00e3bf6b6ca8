"""The network-namespace lab (tests/netns.py) leaves nothing behind: not when its run is
interrupted, and not when it is killed outright (the next lab of its prefix removes what is
left); and it refuses to shadow routes this machine already has in 198.18.0.0/15."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from tests import netns
from tests.conftest import ROOT

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running

PREFIX = "thugrqx"
HOSTS = {"a": "198.18.4.2/24"}
BUILT = [f"interface {PREFIX}-a", f"interface {PREFIX}-br", f"namespace {PREFIX}-a"]
#: A run that opens a lab with a process inside its host, says so, and waits to be ended.
HOLDER = f"""
import subprocess, time
from tests.netns import Lab
with Lab({PREFIX!r}, {HOSTS!r}) as lab:
    subprocess.Popen(lab.command("a", ["sleep", "600"]))
    print("ready", flush=True)
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether `pid` still runs: a killed process whose parent died may linger as a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def holder() -> Iterator[subprocess.Popen]:
    """A separate run holding a lab open (a process in its host), removed at the end anyway."""
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert process.stdout.readline() == "ready\n"
        assert sorted(netns.leftovers(PREFIX)) == BUILT
        yield process
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        netns.cleanup(PREFIX)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_run_removes_its_namespace_veth_and_bridge(holder, signum):
    holder.send_signal(signum)
    assert holder.wait(timeout=30) != 0
    assert netns.leftovers(PREFIX) == []


def test_a_killed_runs_leftovers_are_removed_when_the_next_lab_opens(holder):
    """SIGKILL leaves the namespace (held open by the process in it), its veth and the bridge."""
    inside = netns.ip("netns", "pids", f"{PREFIX}-a").split()
    holder.kill()
    holder.wait()
    assert sorted(netns.leftovers(PREFIX)) == BUILT
    with netns.Lab(PREFIX, HOSTS):  # building would fail on any name left over
        assert inside and not any(alive(int(pid)) for pid in inside)
    assert netns.leftovers(PREFIX) == []


def test_a_lab_refuses_a_range_already_routed_here(holder):
    with pytest.raises(netns.LabError, match="already routed"):
        with netns.Lab("thugrqy", {"b": "198.18.5.2/24"}):
            pass
    assert netns.leftovers("thugrqy") == []


def test_a_second_lab_of_the_same_prefix_is_refused_and_leaves_the_first_alone(holder):
    with pytest.raises(netns.LabError, match="another run"):
        with netns.Lab(PREFIX, HOSTS):
            pass
    assert sorted(netns.leftovers(PREFIX)) == BUILT
