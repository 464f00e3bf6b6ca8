"""The DNS answers an analysis got are kept in its result (thugrq.resolutions), shown by
`thugrq result`, and compared across a group's analyses by `thugrq group`.

Names other than `localhost` (in /etc/hosts) are answered by `Table`, a resolver installed as
`socket.getaddrinfo` before the recorder wraps it: no test asks the real DNS.
"""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from rq.job import JobStatus
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.site import Site
from tests.test_analysis import analyse_forked
from tests.test_geo_proxy import socks5, start_proxy  # noqa: F401 - fixtures
from thugrq import results
from thugrq.compare import Analysis, compare
from thugrq.context import AnalysisContext
from thugrq.job import ThugrqJob
from thugrq.proxy import Proxy
from thugrq.resolutions import Resolutions
from thugrq.targets import Policy

LOCALHOST = {"host": "localhost", "addresses": ["127.0.0.1"], "resolver": "worker"}


class Table:
    """A resolver answering from `answers` (name -> addresses); other names do not exist."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    def getaddrinfo(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple]:
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))
            for address in self.answers[host]
        ]


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Table:
    resolver = Table({"evil.test": ["198.51.100.7", "198.51.100.3", "198.51.100.7"]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver


def untimed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if k != "resolved_at"} for entry in entries]


def recorded(lookups: Resolutions) -> list[dict[str, Any]]:
    """The entries, without their times."""
    return untimed(lookups.answers(None))


def test_a_name_lookup_is_recorded_with_its_addresses_and_utc_time():
    with Resolutions() as lookups:
        socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert recorded(lookups) == [LOCALHOST]
    resolved_at = datetime.fromisoformat(lookups.entries[0]["resolved_at"])
    assert resolved_at.utcoffset() == timezone.utc.utcoffset(None)


def test_addresses_are_sorted_and_unique(table):
    with Resolutions() as lookups:
        socket.getaddrinfo("evil.test", 443)
    assert lookups.entries[0]["addresses"] == ["198.51.100.3", "198.51.100.7"]


def test_address_literals_are_not_recorded():
    with Resolutions() as lookups:
        socket.getaddrinfo("127.0.0.1", 80)
        socket.getaddrinfo("::1", 80)
        socket.gethostbyname("127.0.0.1")
    assert recorded(lookups) == []


def test_repeated_lookups_with_the_same_answer_are_one_entry():
    with Resolutions() as lookups:
        socket.getaddrinfo("localhost", 80)
        socket.gethostbyname("LOCALHOST")
        socket.gethostbyname_ex("localhost")
    assert recorded(lookups) == [LOCALHOST]


def test_a_failed_lookup_is_recorded_with_its_error(table):
    with Resolutions() as lookups, pytest.raises(socket.gaierror):
        socket.getaddrinfo("nowhere.test", 80)
    assert recorded(lookups) == [
        {"host": "nowhere.test", "addresses": [], "resolver": "worker", "error": "no such name"}
    ]


def test_a_different_answer_later_is_a_second_entry(table):
    with Resolutions() as lookups:
        socket.getaddrinfo("evil.test", 80)
        table.answers["evil.test"] = ["127.0.0.1"]
        socket.getaddrinfo("evil.test", 80)
        socket.getaddrinfo("evil.test", 80)
    assert [entry["addresses"] for entry in lookups.entries] == [
        ["198.51.100.3", "198.51.100.7"], ["127.0.0.1"],
    ]
    assert lookups.entries[0]["resolved_at"] <= lookups.entries[1]["resolved_at"]


def test_the_resolvers_are_restored_on_exit_even_after_an_error():
    originals = (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex)
    with pytest.raises(RuntimeError), Resolutions():
        assert socket.getaddrinfo is not originals[0]
        raise RuntimeError("the analysis failed")
    assert (socket.getaddrinfo, socket.gethostbyname, socket.gethostbyname_ex) == originals


def test_lookups_from_many_threads_are_each_recorded_once(table):
    names = [f"host{n}.test" for n in range(5)]
    table.answers.update({name: [f"198.51.100.{n}"] for n, name in enumerate(names)})
    start = threading.Barrier(8)

    def look_up() -> None:
        start.wait()
        for _ in range(50):
            for name in names:
                socket.getaddrinfo(name, 80)

    with Resolutions() as lookups:
        threads = [threading.Thread(target=look_up) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(entry["host"] for entry in lookups.entries) == names


def test_threads_alive_before_the_analysis_are_the_workers_and_not_recorded():
    go, done = threading.Event(), threading.Event()

    def worker_thread() -> None:  # say, one reaching Redis by name
        go.wait()
        socket.getaddrinfo("localhost", 6379)
        done.set()

    threading.Thread(target=worker_thread, daemon=True).start()
    with Resolutions() as lookups:
        go.set()
        assert done.wait(10)
    assert recorded(lookups) == []


def test_the_proxys_own_name_is_not_recorded():
    with Resolutions(Proxy.parse("socks5://localhost:1080", environ={})) as lookups:
        socket.getaddrinfo("localhost", 1080)  # as Thug checks that the proxy is up
    assert recorded(lookups) == []


def test_behind_a_resolving_proxy_each_fetched_name_is_listed_once_as_the_proxys():
    log = {
        "locations": [{"url": "http://evil.test/a"}, {"url": "http://198.51.100.7/b"}],
        "connections": [
            {"source": "about:blank", "destination": "http://evil.test/a"},
            {"source": "http://evil.test/a", "destination": "https://CDN.test/x.js"},
        ],
    }
    with Resolutions(Proxy.parse("socks5h://127.0.0.1:1080", environ={})) as lookups:
        pass
    assert lookups.answers(log) == [
        {"host": "evil.test", "addresses": None, "resolved_at": None, "resolver": "proxy"},
        {"host": "cdn.test", "addresses": None, "resolved_at": None, "resolver": "proxy"},
    ]


def test_behind_a_proxy_resolving_nothing_the_worker_answers_are_kept():
    log = {"locations": [{"url": "http://localhost/"}]}
    with Resolutions(Proxy.parse("socks5://127.0.0.1:1080", environ={})) as lookups:
        socket.gethostbyname("localhost")  # as PySocks resolves for socks5://
    assert [entry["resolver"] for entry in lookups.answers(log)] == ["worker"]


def test_entries_past_the_cap_are_dropped_and_counted_as_truncated(table):
    table.answers.update({"a.test": ["198.51.100.1"], "b.test": ["198.51.100.2"]})
    with Resolutions(limit=2) as lookups:
        for name in ("a.test", "b.test", "evil.test"):
            socket.getaddrinfo(name, 80)
    document = build(lookups.answers(None))
    assert [entry["host"] for entry in document["summary"]["dns"]] == ["a.test", "b.test"]
    assert document["truncated"] == {"summary.dns": {"entries": 1}}


def build(dns: list[dict[str, Any]]) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return results.build(
        url="http://evil.test/", options={"useragent": "winxpie60"}, worker={}, thug={},
        started=now, ended=now, status=results.STATUS_COMPLETED, error=None, log=None, dns=dns,
    )


def test_the_summary_shows_one_resolved_line_per_entry():
    document = build([
        {"host": "evil.test", "addresses": ["198.51.100.3", "198.51.100.7"], "resolved_at": "t1",
         "resolver": "worker"},
        {"host": "gone.test", "addresses": [], "resolved_at": "t1", "resolver": "worker",
         "error": "no such name"},
        {"host": "far.test", "addresses": None, "resolved_at": None, "resolver": "proxy"},
    ])
    lines = [line for line in results.format_summary(document).splitlines() if "Resolved" in line]
    assert lines == [
        "Resolved     evil.test -> 198.51.100.3, 198.51.100.7",
        "Resolved     gone.test: no such name",
        "Resolved     far.test: resolved by the proxy",
    ]


@pytest.fixture
def own_site():
    with Site() as running:
        yield running


def by_name(site: Site, path: str) -> str:
    return site.url(path).replace("127.0.0.1", "localhost")


def test_an_analysis_records_the_names_its_page_resolved(own_site):
    context = AnalysisContext(policy=Policy(allow_all=True))
    document = analyse_forked(by_name(own_site, "/chain/final"), context)
    assert document["status"] == "completed", document["error"]
    assert untimed(document["summary"]["dns"]) == [LOCALHOST]


def test_behind_a_socks5h_proxy_the_pages_name_is_listed_as_resolved_by_the_proxy(own_site, socks5):
    proxy = Proxy.parse(socks5().url.replace("socks5://", "socks5h://"), environ={})
    context = AnalysisContext(policy=Policy.parse("127.0.0.1/32"), proxy=proxy)
    document = analyse_forked(by_name(own_site, "/chain/final"), context)
    assert document["status"] == "completed", document["error"]
    assert document["summary"]["dns"] == [
        {"host": "localhost", "addresses": None, "resolved_at": None, "resolver": "proxy"}
    ]


def test_thugrq_result_shows_the_names_a_job_resolved(thugrq, burst_worker, site):
    job_id = thugrq("enqueue", by_name(site, "/chain/final"), check=True).stdout.strip()
    burst_worker("--queue", "generic")
    shown = thugrq("result", job_id)
    assert shown.returncode == 0, shown.stderr
    assert "Resolved     localhost -> 127.0.0.1" in shown.stdout.splitlines()


def test_the_horses_redis_connection_by_name_is_not_recorded(thugrq, burst_worker, site, env):
    redis_by_name = env["THUGRQ_REDIS_URL"].replace("127.0.0.1", "localhost")
    by_name_env = {**env, "THUGRQ_REDIS_URL": redis_by_name}
    job_id = thugrq("enqueue", site.url("/chain/final"), env=by_name_env, check=True).stdout.strip()
    burst_worker("--queue", "generic", env=by_name_env)
    document = json.loads(thugrq("result", job_id, "--json", env=by_name_env, check=True).stdout)
    assert document["status"] == "completed"
    assert document["summary"]["dns"] == []


def analysed(country: str, dns: list[dict[str, Any]]) -> Analysis:
    """An analysis of http://evil.test/ from `country` that got these DNS answers."""
    return Analysis("http://evil.test/", f"{country}/winxpie60", build(dns)["summary"])


def answer(host: str, *addresses: str) -> dict[str, Any]:
    return {"host": host, "addresses": list(addresses), "resolved_at": "t", "resolver": "worker"}


def test_a_host_answered_differently_per_country_is_a_difference():
    differences = compare([
        analysed("IT", [answer("evil.test", "198.51.100.7")]),
        analysed("US", [answer("evil.test", "203.0.113.9")]),
    ])
    assert [d.to_dict() for d in differences] == [{
        "url": "http://evil.test/", "aspect": "DNS answers", "host": "evil.test",
        "seen": {"198.51.100.7": ["IT/winxpie60"], "203.0.113.9": ["US/winxpie60"]},
    }]


def test_a_host_resolved_by_a_proxy_is_not_a_difference():
    proxied = {**answer("evil.test"), "addresses": None, "resolver": "proxy"}
    differences = compare([
        analysed("IT", [answer("evil.test", "198.51.100.7")]),
        analysed("US", [proxied]),
    ])
    assert differences == []


def finish(connection, job_id: str, document: dict[str, Any]) -> None:
    """Record `document` as the job's result, as a worker would."""
    job = ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)
    job.set_status(JobStatus.FINISHED)
    Result.create(job, Result.Type.SUCCESSFUL, ttl=600, return_value=document)


def test_thugrq_group_reports_hosts_whose_answers_differ(thugrq, connection):
    enqueued = thugrq("enqueue", "http://evil.test/", "-c", "IT", "-c", "US", "--json", check=True)
    rows = [json.loads(line) for line in enqueued.stdout.splitlines()]
    for row, address in zip(rows, ("198.51.100.7", "203.0.113.9")):
        document = build([answer("evil.test", address)])
        finish(connection, row["id"], {**document, "worker": {"country": row["queue"]}})
    report = json.loads(thugrq("group", rows[0]["group"], "--json").stdout)
    differing = [(d["aspect"], d["host"]) for d in report["differences"]]
    assert differing == [("DNS answers", "evil.test")]
    text = thugrq("group", rows[0]["group"]).stdout
    assert "DIFFERENT DNS answers of evil.test for http://evil.test/:" in text
    assert "  US/winxpie60:\n    203.0.113.9" in text
