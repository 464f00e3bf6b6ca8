"""The result document: the summary is read straight from Thug's JSON log, the log is capped."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

from thugrq import results


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
    log = {"locations": [{"content": "x" * (results.MAX_STRING + 10)}] * 3,
           "behavior": list(range(results.MAX_ITEMS + 5))}
    capped, truncated = results.cap(log)
    assert truncated
    assert len(capped["locations"][0]["content"]) < results.MAX_STRING + 100
    assert len(capped["behavior"]) == results.MAX_ITEMS


def test_small_logs_are_kept_whole():
    log = {"exploits": [{"module": "m"}], "url": "http://a/"}
    assert results.cap(log) == (log, False)


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
