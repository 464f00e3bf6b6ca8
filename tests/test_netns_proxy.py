"""Workers behind proxies in other countries, and the DNS answers each country got (issue 15),
on hosts in network namespaces (tests/netns.py).

Two proxies, each on a host of its own in another country's range: microsocks (SOCKS5, with
credentials) in the US range, pproxy (HTTP CONNECT) in the German one. The workers using them
run in the root namespace, whose own address (the bridge's) the stand-in places in France: a
worker that located its own host instead of its proxy's exit would serve FR. Two more hosts, in
Italy and Japan, each resolve names with a resolver of their own (/etc/netns), the DNS
stand-in on the bridge, which gives one test name a different address per country: geo-DNS
cloaking, as `thugrq group` must report it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests import netns
from tests.conftest import BIN, stop_all, wait_for
from tests.dns_standin import DnsStandIn
from tests.test_dashboard import get
from tests.site import Site
from tests.test_netns_fleet import DROPPED, bridge_redis, fetched_by, tag_of  # noqa: F401
from thugrq import fleet
from thugrq.job import fetch
from thugrq.proxy import PASSWORD_VARIABLE, USERNAME_VARIABLE
from thugrq.submit import wait

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running

PREFIX = "thugrq"
HOSTS = {
    "socks": "198.18.2.2/24", "http": "198.18.3.2/24", "it1": "198.18.1.2/24", "jp1": "198.18.4.2/24",
}
COUNTRIES = {
    "198.18.0.0/24": ("FR", 64500), "198.18.1.0/24": ("IT", 64501), "198.18.2.0/24": ("US", 64502),
    "198.18.3.0/24": ("DE", 64503), "198.18.4.0/24": ("JP", 64504),
}
SOCKS_PORT, HTTP_PORT = 1080, 8080
CREDENTIALS = {USERNAME_VARIABLE: "lab-analyst", PASSWORD_VARIABLE: "Pr0xy-s3cret-4711"}
#: The name the stand-in resolves per country: Italy gets the bridge's site, Japan the other.
CLOAKED = "cloak.test"
OTHER_SITE = "198.18.0.2"
RECHECK = 3


@dataclass
class ProxyLab:
    lab: netns.Lab
    redis_url: str
    site: Site
    #: The same site's pages on OTHER_SITE: what Japan is sent to.
    other: Site
    dns: DnsStandIn
    logs: Path
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    proxies: dict[str, subprocess.Popen] = field(default_factory=dict)

    def environment(self, **extra: str) -> dict[str, str]:
        environment = {key: value for key, value in os.environ.items() if key not in DROPPED}
        environment.update(
            THUGRQ_REDIS_URL=self.redis_url, THUGRQ_DNS=f"{netns.BRIDGE.ip}:53",
            THUGRQ_DNS_TIMEOUT="2", **extra,
        )
        return environment

    def start_worker(self, name: str, *arguments: str, host: str | None = None, **extra: str) -> None:
        """`thugrq-worker --name NAME ARGUMENTS`, in the root namespace or inside `host`."""
        argv = [
            str(BIN / "thugrq-worker"), "--name", name, "--recheck", str(RECHECK),
            "--allow-private-targets", str(netns.LAB), *arguments,
        ]
        home = self.logs / name
        with open(self.logs / f"{name}.log", "a") as log:
            self.workers[name] = subprocess.Popen(
                self.lab.command(host, argv) if host else argv,
                env=self.environment(THUGRQ_HOME=str(home), **extra),
                stdout=log, stderr=subprocess.STDOUT,
            )

    def start_socks(self, *extra: str) -> None:
        """microsocks on the US host, asking for CREDENTIALS."""
        command = [
            "microsocks", "-i", self.lab.hosts["socks"].address, "-p", str(SOCKS_PORT),
            "-u", CREDENTIALS[USERNAME_VARIABLE], "-P", CREDENTIALS[PASSWORD_VARIABLE], *extra,
        ]
        self.proxies["socks"] = self.start_proxy("socks", command)

    def start_proxy(self, host: str, command: list[str]) -> subprocess.Popen:
        """`command` inside `host`, its output in the lab's logs."""
        with open(self.logs / f"proxy-{host}.log", "a") as log:
            return subprocess.Popen(self.lab.command(host, command), stdout=log, stderr=subprocess.STDOUT)

    def record(self, name: str) -> fleet.WorkerRecord | None:
        records = fleet.workers(redis.Redis.from_url(self.redis_url))
        return next((r for r in records if r.name == name), None)

    def thugrq(self, *arguments: str) -> str:
        return subprocess.run(
            [str(BIN / "thugrq"), *arguments], env=self.environment(), capture_output=True,
            text=True, timeout=60, check=True,
        ).stdout

    def enqueue(self, *arguments: str) -> list[dict]:
        return [json.loads(line) for line in self.thugrq("enqueue", "--json", *arguments).splitlines()]

    def finish(self, jobs: list[dict], timeout: float = 90) -> None:
        states = wait(redis.Redis.from_url(self.redis_url), [job["id"] for job in jobs], timeout=timeout)
        unfinished = [(s.id, s.status, s.reason) for s in states if s.status != "finished"]
        assert not unfinished, f"{unfinished}\n{self.said()}"

    def said(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.logs.glob("*.log"))
        )


@pytest.fixture(scope="module")
def lab() -> Iterator[netns.Lab]:
    reason = netns.unavailable() or (None if shutil.which("microsocks") else "microsocks is missing")
    if reason:
        pytest.skip(reason)
    with netns.Lab(PREFIX, HOSTS) as opened:
        opened.add_service_address(f"{OTHER_SITE}/24")
        for host in ("it1", "jp1"):
            opened.resolve_with(host, str(netns.BRIDGE.ip))
        yield opened
    assert netns.leftovers(PREFIX) == []


@pytest.fixture(scope="module")
def proxy_lab(lab, bridge_redis, tmp_path_factory) -> Iterator[ProxyLab]:
    """The proxies on their hosts, the site(s) and the stand-in (port 53) on the bridge, and a
    worker behind each proxy, waited for until each serves its exit's country."""
    bridge = str(netns.BRIDGE.ip)
    with (
        Site(host=bridge) as site,
        Site(host=OTHER_SITE, port=site.port) as other,
        DnsStandIn(host=bridge, port=53, reflect=True) as dns,
    ):
        for network, (country, asn) in COUNTRIES.items():
            dns.add_prefix(network, country, asn)
        dns.add_by_source(CLOAKED, "A", {"198.18.1.0/24": bridge, "198.18.4.0/24": OTHER_SITE})
        running = ProxyLab(lab, bridge_redis, site, other, dns, tmp_path_factory.mktemp("proxy-lab"))
        running.start_socks()
        running.proxies["http"] = running.start_proxy("http", [
            sys.executable, "-m", "pproxy", "-l", f"http://{lab.hosts['http'].address}:{HTTP_PORT}",
        ])
        socks_url = f"socks5://{lab.hosts['socks'].address}:{SOCKS_PORT}"
        running.start_worker("via-socks", "--proxy", socks_url, **CREDENTIALS)
        running.start_worker("via-http", "--proxy", f"http://{lab.hosts['http'].address}:{HTTP_PORT}")
        try:
            try:
                wait_for(lambda: (r := running.record("via-socks")) and r.country == "US", timeout=60)
                wait_for(lambda: (r := running.record("via-http")) and r.country == "DE", timeout=60)
            except AssertionError:
                pytest.fail(f"the proxied workers never served their exits' countries:\n{running.said()}")
            yield running
        finally:
            stop_all([*running.workers.values(), *running.proxies.values()])


def test_a_worker_behind_a_proxy_serves_the_country_of_the_proxys_exit(proxy_lab):
    socks, http = proxy_lab.record("via-socks"), proxy_lab.record("via-http")
    assert (socks.country, socks.queues) == ("US", ["US", "generic"])
    assert (http.country, http.queues) == ("DE", ["DE", "generic"])
    listed = proxy_lab.thugrq("workers")
    assert "FR" not in listed  # the root namespace's own country: never served


def test_every_request_of_a_proxied_workers_jobs_comes_from_the_proxy(proxy_lab):
    site, lab = proxy_lab.site, proxy_lab.lab
    jobs = proxy_lab.enqueue(
        "--country", "US", "--country", "DE",
        *(site.url(f"/chain/start?job=proxied-{n}") for n in range(3)),
    )
    proxy_lab.finish(jobs)
    exits = {"US": lab.hosts["socks"].address, "DE": lab.hosts["http"].address}
    visits = [visit for visit in list(site.visits) if (tag_of(visit.target) or "").startswith("proxied")]
    assert len(visits) == len(jobs)
    by_tag = fetched_by(site)
    for job in jobs:
        assert by_tag[tag_of(job["url"])].count(exits[job["queue"]]) >= 1
    # Every request of those analyses, the chain's later hops too, from an exit, never the bridge.
    assert {visit.client for visit in site.visits} <= set(exits.values()) | {
        lab.hosts[host].address for host in ("it1", "jp1")
    }


def test_a_dead_proxy_stops_country_work_and_a_revived_one_resumes_it(proxy_lab):
    site = proxy_lab.site
    proxy_lab.proxies.pop("socks").kill()
    jobs = proxy_lab.enqueue("--country", "US", site.url("/chain/final?job=dead-proxy"))
    try:
        wait_for(lambda: (r := proxy_lab.record("via-socks")) and r.queues == ["generic"], timeout=30)
        assert "dead-proxy" not in fetched_by(site)  # nothing fetched from the worker's own host
        queued = fetch(redis.Redis.from_url(proxy_lab.redis_url), jobs[0]["id"])
        assert queued.get_status(refresh=True) == "queued"  # put back, or never taken
    finally:
        proxy_lab.start_socks()
    wait_for(lambda: (r := proxy_lab.record("via-socks")) and r.country == "US", timeout=60)
    proxy_lab.finish(jobs)
    assert fetched_by(site)["dead-proxy"] == [proxy_lab.lab.hosts["socks"].address]


def test_a_proxy_whose_exit_moves_to_germany_moves_its_worker_to_de(proxy_lab):
    """The SOCKS host gains a German address and microsocks comes back relaying from it (a
    proxy provider re-routing its exit): the worker behind it must notice and serve DE."""
    lab, moved = proxy_lab.lab, "198.18.3.9"
    netns.ip("-n", lab.hosts["socks"].link, "address", "add", f"{moved}/24", "dev", netns.HOST_LINK)
    proxy_lab.proxies.pop("socks").kill()
    proxy_lab.start_socks("-b", moved)
    try:
        wait_for(lambda: (r := proxy_lab.record("via-socks")) and r.country == "DE", timeout=60)
        assert proxy_lab.record("via-socks").address == moved
        jobs = proxy_lab.enqueue("--country", "DE", proxy_lab.site.url("/chain/final?job=moved-exit"))
        proxy_lab.finish(jobs)
        assert set(fetched_by(proxy_lab.site)["moved-exit"]) <= {moved, lab.hosts["http"].address}
    finally:
        proxy_lab.proxies.pop("socks").kill()
        proxy_lab.start_socks()
        netns.ip("-n", lab.hosts["socks"].link, "address", "delete", f"{moved}/24", "dev", netns.HOST_LINK)
        wait_for(lambda: (r := proxy_lab.record("via-socks")) and r.country == "US", timeout=60)


def test_the_proxys_credentials_appear_nowhere(proxy_lab, dashboard):
    secret = CREDENTIALS[PASSWORD_VARIABLE]
    jobs = proxy_lab.enqueue("--country", "US", proxy_lab.site.url("/chain/final?job=secretless"))
    proxy_lab.finish(jobs)
    commands = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    worker_commands = [line for line in commands.splitlines() if "thugrq-worker" in line]
    assert worker_commands and not any(secret in line for line in worker_commands)
    assert secret not in proxy_lab.said()
    connection = redis.Redis.from_url(proxy_lab.redis_url)
    dump = [connection.dump(key) or b"" for key in connection.scan_iter(count=1000)]
    assert dump and not any(secret.encode() in value for value in dump)
    assert secret not in proxy_lab.thugrq("workers", "--json")
    assert secret not in proxy_lab.thugrq("result", jobs[0]["id"], "--json")
    base = dashboard(environment=proxy_lab.environment())
    for page in ("0/data/workers.json", "0/data/queues.json", f"0/data/job/{jobs[0]['id']}.json"):
        status, body = get(base + page)
        assert status == 200 and secret.encode() not in body, page


def test_a_group_over_two_countries_reports_the_dns_answers_that_differ(proxy_lab):
    for host in ("it1", "jp1"):
        proxy_lab.start_worker(host, host=host)
    try:
        wait_for(lambda: proxy_lab.record("it1") and proxy_lab.record("jp1"), timeout=60)
        url = f"http://{CLOAKED}:{proxy_lab.site.port}/chain/final?job=geo-dns"
        jobs = proxy_lab.enqueue("--country", "IT", "--country", "JP", url)
        proxy_lab.finish(jobs)
        report = proxy_lab.thugrq("group", jobs[0]["group"])
        print(f"\n{report}")
        assert CLOAKED in report and OTHER_SITE in report, report
        hosts = proxy_lab.lab.hosts
        assert fetched_by(proxy_lab.site)["geo-dns"] == [hosts["it1"].address]
        assert fetched_by(proxy_lab.other)["geo-dns"] == [hosts["jp1"].address]
    finally:
        stop_all([proxy_lab.workers.pop(host) for host in ("it1", "jp1")])
