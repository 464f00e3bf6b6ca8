"""A warm worker (thugrq.warm) gives each job the result a cold process gives it.

One worker analyses, in one burst, pages that would show state carried from one analysis to the
next (cookies set by the server and by scripts, script globals, a built-in prototype changed,
matches of the operator's classifier rules, the personality, the referer, `threshold`), in one
order and then in the reverse one. Each result must equal that of the same job analysed by a
cold process: one that has imported Thug and done nothing else (tests/cold.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.conftest import BIN, ROOT, with_dns
from thugrq import classifiers, job, submit
from thugrq.options import Options

#: name -> (path on the test site, options): jobs whose results show carried-over state.
JOBS: dict[str, tuple[str, dict[str, Any]]] = {
    "sets cookies, a global and a prototype": ("/state/set", {}),
    "reports cookies, referer, personality, globals": ("/state/echo", {}),
    "as another personality": ("/state/echo", {"useragent": "win7chrome49"}),
    "with a referer": ("/state/echo", {"referer": "http://referer.test/from"}),
    "matches the operator's URL rule": ("/flagged", {}),
    "redirect chain under threshold 1": ("/chain/start", {"threshold": 1}),
    "redirect chain": ("/chain/start", {}),
    "download": ("/download", {}),
}


def facts(summary: dict[str, Any]) -> dict[str, Any]:
    """What an analysis found, without what differs from run to run (times, ports' hosts)."""
    return {
        "final_url": summary["final_url"],
        "chain": [hop["url"] for hop in summary["redirect_chain"]],
        "locations": [(entry["url"], entry["status"], entry["md5"]) for entry in summary["locations"]],
        "classifiers": [(match["classifier"], match["rule"], match["url"]) for match in summary["classifiers"]],
        "exploits": summary["exploits"],
        "samples": [sample["sha256"] for sample in summary["samples"]],
    }


def options_of(name: str) -> dict[str, Any]:
    return Options.from_dict(JOBS[name][1]).to_dict()


@pytest.fixture(scope="module")
def runs(redis_server, site, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Every job analysed cold, then by one warm worker in both orders (and the counter page
    twice), in one burst."""
    names = list(JOBS)
    rules = tmp_path_factory.mktemp("rules") / "flagged.yar"
    rules.write_text('rule thugrq_test_flagged { strings: $url = "/flagged" condition: $url }\n')
    cold = subprocess.run(
        [sys.executable, "-m", "tests.cold"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        input=json.dumps({
            "jobs": [[site.url(JOBS[name][0]), options_of(name)] for name in names],
            "rules": [["url", str(rules)]],
        }),
        env={**os.environ, "THUGRQ_ALLOW_PRIVATE_TARGETS": "127.0.0.0/8"},
    )
    assert cold.returncode == 0, cold.stderr[-3000:]

    connection = redis.Redis.from_url(redis_server)
    connection.flushall()
    order = names + names[::-1] + ["counter", "counter"]
    ids = []
    for name in order:
        path, options = JOBS.get(name, ("/state/counter", {}))
        ids.append(submit.enqueue(connection, [site.url(path)], options=Options.from_dict(options)).jobs[0].id)
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(
        THUGRQ_REDIS_URL=redis_server, THUGRQ_HOME=str(tmp_path_factory.mktemp("home")),
        THUGRQ_ALLOW_PRIVATE_TARGETS="127.0.0.0/8",
    )
    worker = subprocess.run(
        [str(BIN / "thugrq-worker"), "--burst", "--queue", "generic", "--rules", f"url:{rules}"],
        env=with_dns(environment), capture_output=True, text=True, timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    warm_results = []
    for job_id in ids:
        state, document = job.result(connection, job_id)
        assert document is not None, f"job {job_id}: {state}"
        warm_results.append(document)
    yield {
        "cold": dict(zip(names, json.loads(cold.stdout))),
        "forward": dict(zip(names, warm_results[: len(names)])),
        "reverse": dict(zip(names[::-1], warm_results[len(names) : 2 * len(names)])),
        "counter": warm_results[-2:],
    }


@pytest.mark.parametrize("name", list(JOBS))
def test_a_warm_worker_gives_each_job_the_result_of_a_cold_process_in_either_order(runs, name):
    cold = runs["cold"][name]
    assert cold["status"] == "completed", cold["error"]
    for order in ("forward", "reverse"):
        document = runs[order][name]
        assert document["status"] == "completed", document["error"]
        assert facts(document["summary"]) == facts(cold["summary"]), order


def test_the_state_pages_see_the_state_they_test_for(runs):
    """Within one analysis the echo page sees the cookies the set page left; it reports the
    personality and the referer a job gives, and no cookie nor global on its own."""
    seen = {name: runs["cold"][name]["summary"]["final_url"] for name in JOBS}
    assert "cookie=served%3D1%3B+scripted%3D1" in seen["sets cookies, a global and a prototype"]
    assert "referer=http%3A%2F%2Freferer.test%2Ffrom" in seen["with a referer"]
    assert "Chrome%2F49" in seen["as another personality"]
    alone = seen["reports cookies, referer, personality, globals"]
    assert "MSIE+6.0" in alone and "cookie=none" in alone and "cookie_js=none" in alone
    assert "globals=undefined,undefined" in alone
    flagged = runs["cold"]["matches the operator's URL rule"]["summary"]["classifiers"]
    assert [(match["classifier"], match["rule"]) for match in flagged] == [("url", "thugrq_test_flagged")]
    assert len(runs["cold"]["redirect chain under threshold 1"]["summary"]["redirect_chain"]) < len(
        runs["cold"]["redirect chain"]["summary"]["redirect_chain"]
    )


def test_the_same_url_whose_content_changed_gives_a_new_result(runs):
    first, second = (document["summary"]["final_url"] for document in runs["counter"])
    assert first != second


def test_each_analysis_gets_classifiers_of_its_own_sharing_only_compiled_rules():
    import logging

    import thug

    logging.getLogger("Thug").configuration_path = thug.__configuration_path__
    one, other = classifiers.for_analysis(), classifiers.for_analysis()
    assert set(one) == set(classifiers.CLASSIFIERS)
    for kind in one:
        assert one[kind] is not other[kind]
        assert one[kind].matches is not other[kind].matches
        assert one[kind].rules is other[kind].rules


@pytest.mark.parametrize(
    "rules, reason",
    [("url:MISSING", "No such file"), ("url:BROKEN", "syntax error"), ("shell:BROKEN", "unknown classifier 'shell'")],
)
def test_a_worker_refuses_to_start_on_rules_it_cannot_load(burst_worker, tmp_path, rules, reason):
    (tmp_path / "BROKEN").write_text("rule broken {\n")
    kind, _, name = rules.partition(":")
    finished = burst_worker("--queue", "generic", "--rules", f"{kind}:{tmp_path / name}")
    assert finished.returncode != 0
    assert reason in finished.stderr and str(tmp_path / name) in finished.stderr
