"""The result document: the summary is read straight from Thug's JSON log, the log is capped."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from thugrq import config, defaults, results, truncation
from thugrq.exceptions import ConfigError


def connection(source, destination, method):
    return {"source": source, "destination": destination, "method": method, "flags": {}}


def test_chain_follows_navigation_and_ignores_sub_resources():
    chain = results.redirect_chain(
        "http://a/",
        [
            connection("about:blank", "http://a/", "window open"),
            connection("http://a/", "http://cdn/lib.js", "script src"),
            connection("http://a/", "http://b/", "http-redirect"),
            connection("http://b/", "http://frame/", "iframe"),
            connection("http://b/", "http://c/", "meta"),
            connection("http://c/", "http://c/", "window open"),
        ],
    )
    assert chain == [
        {"url": "http://a/", "via": None},
        {"url": "http://b/", "via": "http-redirect"},
        {"url": "http://c/", "via": "meta"},
    ]


def test_chain_stops_at_a_loop():
    chain = results.redirect_chain(
        "http://a/",
        [connection("http://a/", "http://b/", "href"), connection("http://b/", "http://a/", "href")],
    )
    assert [hop["url"] for hop in chain] == ["http://a/", "http://b/"]


def test_chain_of_a_page_that_never_loaded_is_the_submitted_url():
    assert results.redirect_chain("http://a/", []) == [{"url": "http://a/", "via": None}]


def test_samples_carry_size_from_their_data():
    data = base64.b64encode(b"MZ" + b"\0" * 98).decode()
    summary = results.summarize(
        "http://a/", {"files": [{"type": "PE", "md5": "m", "sha256": "s", "url": "u", "data": data}]}
    )
    assert summary["samples"][0]["size"] == 100 and summary["counts"]["samples"] == 1


def test_long_strings_and_lists_are_capped_and_flagged():
    log = {"locations": [{"content": "x" * (truncation.MAX_STRING + 10)}] * 3,
           "behavior": list(range(truncation.MAX_ITEMS + 5))}
    capped, truncated = truncation.cap(log)
    assert truncated
    assert len(capped["locations"][0]["content"]) < truncation.MAX_STRING + 100
    assert len(capped["behavior"]) == truncation.MAX_ITEMS


def test_small_logs_are_kept_whole():
    log = {"exploits": [{"module": "m"}], "url": "http://a/"}
    capped, cut = truncation.cap(log)
    assert capped == log and not cut


def test_document_is_versioned_and_timed():
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    document = results.build(
        url="http://a/", options={}, worker={"name": "w"}, thug={"version": "6.22"},
        started=started, ended=started + timedelta(seconds=2.5),
        status=results.STATUS_ERROR, error="boom", log=None,
    )
    assert document["schema"] == "thugrq.result/1"
    assert document["duration"] == 2.5
    assert document["summary"]["final_url"] == "http://a/"
    assert "error: boom" in results.format_summary(document)


def document_of(log, max_bytes=defaults.DEFAULT_MAX_RESULT_BYTES, refused=(), error=None):
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return results.build(
        url="http://a/", options={"timeout": 5}, worker={"name": "w", "country": "IT"},
        thug={"version": "6.22"}, started=moment, ended=moment, status=results.STATUS_TIMEOUT,
        error=error, log=log, refused=refused, max_bytes=max_bytes,
    )


def exploit(number):
    return {"url": f"http://a/{number}", "module": "WScript.Shell ActiveX", "description": "Run", "cve": None}


def test_summary_lists_keep_their_beginning_and_count_the_rest():
    refused = truncation.Capped()
    for port in range(250):
        refused.append({"address": "10.0.0.1", "port": port, "reason": "private"})
    document = document_of({"exploits": [exploit(n) for n in range(5000)]}, refused=refused)
    summary, truncated = document["summary"], document["truncated"]
    assert len(refused) == truncation.SUMMARY_ITEMS and refused.dropped == 150  # bounded in memory
    assert summary["exploits"] == [exploit(n) for n in range(truncation.SUMMARY_ITEMS)]
    assert summary["counts"]["exploits"] == 5000
    assert truncated["summary.exploits"] == {"entries": 5000 - truncation.SUMMARY_ITEMS}
    assert [r["port"] for r in summary["refused"]] == list(range(truncation.SUMMARY_ITEMS))
    assert truncated["summary.refused"] == {"entries": 150}
    assert truncated["log.exploits"] == {"entries": 5000 - truncation.MAX_ITEMS}
    assert "Truncated    summary.exploits: 4900 entries" in results.format_summary(document)


def test_whole_document_is_bounded_by_shrinking_the_largest_log_parts():
    log = {
        "url": "http://a/",
        "code": [{"snippet": "A" * truncation.MAX_STRING, "language": "Javascript"}] * 3000,
        "behavior": [{"description": "é" * 70_000}] * 50,  # 6 bytes a character as JSON
        "exploits": [exploit(n) for n in range(50_000)],
        "connections": [{"source": "about:blank", "destination": "http://a/", "method": "window open"}],
    }
    document = document_of(log, error="E" * 10_000)
    assert truncation.stored_size(document) <= defaults.DEFAULT_MAX_RESULT_BYTES
    truncated = document["truncated"]
    assert truncated["log.code"]["bytes"] > 60_000_000 and truncated["log.behavior"]["bytes"] > 0
    assert "log.connections" not in truncated
    assert document["log"]["connections"] == log["connections"]  # small parts stay whole
    assert document["log"]["code"][0] == log["code"][0]  # each part keeps its beginning
    assert not any("bytes" in cut for path, cut in truncated.items() if path.startswith("summary."))
    assert len(document["summary"]["exploits"]) == truncation.SUMMARY_ITEMS
    assert document["error"].startswith("E" * truncation.SUMMARY_STRING) and truncated["error"]
    assert (document["status"], document["url"], document["worker"]["name"]) == ("timeout", "http://a/", "w")


def test_at_the_smallest_bound_summary_lists_keep_their_first_entries():
    wide = "\U0001F600" * truncation.SUMMARY_STRING  # 12 bytes a character as JSON
    refused = truncation.Capped()
    for _ in range(200):
        refused.append({"address": "10.0.0.1", "port": 80, "reason": wide})
    log = {
        "exploits": [{"url": wide, "module": wide, "description": wide, "cve": wide}] * 500,
        "locations": [{"url": wide, "content-type": wide, "md5": wide, "content": wide}] * 500,
        "connections": [{"source": "about:blank", "destination": "http://" + wide, "method": "window open"}],
    }
    document = document_of(log, defaults.MIN_MAX_RESULT_BYTES, refused, error=wide)
    assert truncation.stored_size(document) <= defaults.MIN_MAX_RESULT_BYTES
    summary = document["summary"]
    for name in ("exploits", "locations", "refused"):
        assert summary[name] and list(summary[name][0])[0] in ("url", "address")  # cut short
        assert document["truncated"][f"summary.{name}"]["bytes"] > 0
    assert summary["final_url"].startswith("http://\U0001F600")
    results.format_summary(document)  # entries cut short still print


def test_fit_keeps_the_beginning_that_fits():
    cut = Counter()
    text = truncation.fit("é" * 1000, 200, cut)
    assert text.startswith("é") and text.endswith("characters cut]") and len(json.dumps(text)) <= 200
    assert cut["characters"] == 1000 - text.index(".")
    cut = Counter()
    assert truncation.fit(list(range(1000)), 20, cut) == [0, 1, 2, 3, 4, 5]
    assert cut == {"entries": 994}
    assert truncation.fit({"a": 1}, 100, Counter()) == {"a": 1}


@pytest.mark.parametrize(
    "flag, variable, expected",
    [(None, None, 1024 * 1024), ("600000", "700000", 600000), (None, "700000", 700000)],
)
def test_result_bound_comes_from_the_flag_then_the_environment(monkeypatch, flag, variable, expected):
    monkeypatch.delenv(config.MAX_RESULT_BYTES_VARIABLE, raising=False)
    if variable:
        monkeypatch.setenv(config.MAX_RESULT_BYTES_VARIABLE, variable)
    assert config.max_result_bytes(flag) == expected


@pytest.mark.parametrize("value", ["1000", "1MiB", "-5", "²"])
def test_result_bound_below_the_minimum_or_not_a_number_is_refused(value):
    with pytest.raises(ConfigError, match="at least"):
        config.max_result_bytes(value)
