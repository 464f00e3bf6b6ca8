"""An analysis runs under the context it is given (thugrq.context), else the environment's."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from typing import Any

import pytest

from tests.site import Site
from thugrq import analysis
from thugrq.context import AnalysisContext, Identity
from thugrq.targets import ALLOW_VARIABLE, Policy

IDENTITY = Identity(name="IT.test.1", country="IT", asn=64496)


@pytest.fixture
def own_site():
    """A site of this test's own on 127.0.0.1, so its request log is this test's alone."""
    with Site() as running:
        yield running


def analyse_forked(
    url: str, context: AnalysisContext | None, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`analyze` in a forked process, as in a work horse: it patches sockets and files for the
    life of its process."""

    def child(outcome: Any) -> None:
        outcome.put(json.dumps(analysis.analyze(url, options or {}, context=context)))

    forked = multiprocessing.get_context("fork")
    outcome = forked.Queue()
    process = forked.Process(target=child, args=(outcome,))
    process.start()
    try:
        return json.loads(outcome.get(timeout=120))
    finally:
        process.join(30)


def test_the_context_policy_and_identity_rule_over_the_environment(own_site, monkeypatch):
    monkeypatch.setenv(ALLOW_VARIABLE, "all")
    context = AnalysisContext(identity=IDENTITY, policy=Policy())
    document = analyse_forked(own_site.url("/chain/final"), context)
    assert document["status"] == "refused" and "loopback" in document["error"]
    assert document["worker"] == {
        "name": "IT.test.1", "country": "IT", "asn": 64496, "location": None,
    }
    assert own_site.requests == []


def test_a_context_allowing_the_target_analyses_it(own_site, monkeypatch):
    monkeypatch.delenv(ALLOW_VARIABLE, raising=False)
    context = AnalysisContext(identity=IDENTITY, policy=Policy.parse("127.0.0.1/32"))
    document = analyse_forked(own_site.url("/chain/final"), context)
    assert document["status"] == "completed", document["error"]
    assert document["worker"]["name"] == "IT.test.1"
    assert "/chain/final" in own_site.requests


def test_without_a_context_a_script_gets_the_environments(own_site, monkeypatch):
    monkeypatch.delenv(ALLOW_VARIABLE, raising=False)
    document = analyse_forked(own_site.url("/chain/final"), None)
    assert document["status"] == "refused"
    assert document["worker"] == {
        "name": None, "country": None, "asn": None, "location": None,
    }


def test_default_context_reads_the_environment_and_is_frozen(monkeypatch):
    monkeypatch.setenv(ALLOW_VARIABLE, "127.0.0.2/32")
    monkeypatch.setenv("THUGRQ_MAX_RESULT_BYTES", "600000")
    context = AnalysisContext()
    assert context.policy == Policy.parse("127.0.0.2/32")
    assert context.max_result_bytes == 600_000
    assert context.identity == Identity() and context.on_overrun is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.policy = Policy(allow_all=True)  # type: ignore[misc]
