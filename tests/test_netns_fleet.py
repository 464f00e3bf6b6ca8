"""A fleet of separate hosts (network namespaces, tests/netns.py): each worker finds its own
country, and the test site's log shows that every country job ran from that country.

Two hosts in Italy, one in the US, one in Germany, each in its own namespace with its own
address in 198.18.0.0/15. Nobody tells a worker where it is: the DNS stand-in on the bridge
answers what-is-my-IP with the address the query came from, and Cymru's question from a prefix
table. The workers are real `thugrq-worker` processes with no `--country` and no `--queue`.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests import netns
from tests.conftest import BIN, stop_all, wait_for
from tests.dns_standin import DnsStandIn
from tests.site import Site
from thugrq import fleet
from thugrq.job import fetch
from thugrq.process import free_port
from thugrq.redis_server import launch_redis
from thugrq.submit import wait

PREFIX = "thugrq"
#: Where each host is, and the prefixes Cymru's stand-in places in each country.
HOSTS = {
    "it1": "198.18.1.2/24", "it2": "198.18.1.3/24", "us1": "198.18.2.2/24", "de1": "198.18.3.2/24",
}
ADDRESSES = {cidr.split("/")[0] for cidr in HOSTS.values()}
COUNTRIES = {
    "198.18.1.0/24": ("IT", 64501), "198.18.2.0/24": ("US", 64502), "198.18.3.0/24": ("DE", 64503),
}
QUEUES = ("IT", "US", "DE", "generic")
URLS_PER_QUEUE = 12
#: Variables that could send a worker's traffic anywhere but the lab, or point it elsewhere.
DROPPED = (
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "ALL_PROXY", "NO_PROXY", "REDIS_URL", "THUGRQ_ALLOW_PRIVATE_TARGETS",
)


@dataclass(frozen=True)
class Fleet:
    """The running lab: its hosts, the services on its bridge, and the workers' logs."""

    lab: netns.Lab
    redis_url: str
    site: Site
    dns: DnsStandIn
    logs: dict[str, Path]

    def said(self) -> str:
        """Every worker's log, for failure messages."""
        return "\n".join(
            f"--- {host}\n{path.read_text(errors='replace')[-3000:]}"
            for host, path in self.logs.items()
        )


def country_of(address: str) -> str | None:
    """The country the stand-in gives `address`, as a worker there would learn it."""
    ip = ipaddress.ip_address(address)
    countries = (
        country for network, (country, _) in COUNTRIES.items()
        if ip in ipaddress.ip_network(network)
    )
    return next(countries, None)


@pytest.fixture(scope="module")
def lab() -> Iterator[netns.Lab]:
    """The four hosts, removed at the end however the tests went (Lab.close checks it)."""
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    with netns.Lab(PREFIX, HOSTS) as opened:
        yield opened
    assert netns.leftovers(PREFIX) == []


@pytest.fixture(scope="module")
def bridge_redis(lab: netns.Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server listening on the bridge address only."""
    host, port = str(netns.BRIDGE.ip), free_port()
    arguments = ["--port", str(port), "--bind", host, "--protected-mode", "no", "--save", ""]
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1)
    process = launch_redis(arguments, tmp_path_factory.mktemp("lab-redis"), client)
    atexit.register(process.kill)  # the lab's SIGTERM handler exits through atexit
    try:
        yield f"redis://{host}:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        atexit.unregister(process.kill)


@pytest.fixture(scope="module")
def fleet_lab(
    lab: netns.Lab, bridge_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """The site and DNS stand-in on the bridge, and a worker on each host, started together and
    waited for until each has registered with the country its address gave it."""
    logs_dir = tmp_path_factory.mktemp("lab-workers")
    bridge = str(netns.BRIDGE.ip)
    with Site(host=bridge) as site, DnsStandIn(host=bridge, reflect=True) as dns:
        for network, (country, asn) in COUNTRIES.items():
            dns.add_prefix(network, country, asn)
        logs = {host: logs_dir / f"{host}.log" for host in HOSTS}
        running = Fleet(lab, bridge_redis, site, dns, logs)
        workers = [start_worker(running, host, logs_dir / host) for host in HOSTS]
        try:
            connection = redis.Redis.from_url(bridge_redis)
            try:
                wait_for(lambda: len(fleet.workers(connection)) == len(HOSTS), timeout=60)
            except AssertionError:
                pytest.fail(f"the workers did not all register:\n{running.said()}")
            yield running
        finally:
            stop_all(workers)


def start_worker(running: Fleet, host: str, home: Path) -> subprocess.Popen:
    """`thugrq-worker` inside the namespace of `host`, told nothing of where it is."""
    environment = {name: value for name, value in os.environ.items() if name not in DROPPED}
    environment.update(
        THUGRQ_REDIS_URL=running.redis_url, THUGRQ_DNS=running.dns.address,
        THUGRQ_DNS_TIMEOUT="2", THUGRQ_HOME=str(home),
    )
    argv = [str(BIN / "thugrq-worker"), "--allow-private-targets", str(netns.LAB)]
    with open(running.logs[host], "w") as log:
        return subprocess.Popen(
            running.lab.command(host, argv), env=environment, stdout=log, stderr=subprocess.STDOUT,
        )


def enqueue(running: Fleet, queue: str) -> dict[str, str]:
    """URLS_PER_QUEUE cheap pages on `queue`, each with its own query string: {job id: tag}."""
    tags = [f"{queue}-{n}" for n in range(URLS_PER_QUEUE)]
    urls = [running.site.url(f"/chain/final?job={tag}") for tag in tags]
    environment = {name: value for name, value in os.environ.items() if name not in DROPPED}
    environment["THUGRQ_REDIS_URL"] = running.redis_url
    ran = subprocess.run(
        [str(BIN / "thugrq"), "enqueue", "--queue", queue, "--json", *urls],
        env=environment, capture_output=True, text=True, timeout=60, check=True,
    )
    jobs = [json.loads(line) for line in ran.stdout.splitlines()]
    return {job["id"]: job["url"].rsplit("=", 1)[1] for job in jobs}


def test_each_host_finds_its_own_country_from_the_address_its_queries_come_from(fleet_lab):
    records = fleet.workers(redis.Redis.from_url(fleet_lab.redis_url))
    assert sorted(record.country for record in records) == ["DE", "IT", "IT", "US"]
    assert all(record.queues == [record.country, "generic"] for record in records)
    assert set(fleet_lab.dns.sources) == ADDRESSES


def test_country_jobs_are_fetched_only_from_their_country_and_each_job_once(fleet_lab):
    jobs: dict[str, str] = {}
    for queue in QUEUES:
        jobs.update(enqueue(fleet_lab, queue))
    assert len(jobs) == len(QUEUES) * URLS_PER_QUEUE >= 40
    connection = redis.Redis.from_url(fleet_lab.redis_url)
    states = wait(connection, list(jobs), timeout=100)
    unfinished = [(s.id, s.status, s.reason) for s in states if s.status != "finished"]
    assert not unfinished, f"{unfinished}\n{fleet_lab.said()}"

    fetched_by: dict[str, list[str]] = defaultdict(list)  # tag -> client of each request
    for visit in fleet_lab.site.visits:
        if visit.target.startswith("/chain/final?job="):
            fetched_by[visit.target.rsplit("=", 1)[1]].append(visit.client)
    assert set(fetched_by) == set(jobs.values())  # no page but the jobs' own was asked for
    for job_id, tag in jobs.items():
        queue, clients = tag.split("-")[0], fetched_by[tag]
        assert len(clients) == 1, f"{tag} ({job_id}) fetched by {clients}: not analysed once"
        assert len(fetch(connection, job_id).results()) == 1, f"{tag} ({job_id}): several results"
        assert clients[0] in ADDRESSES
        if queue != "generic":
            assert country_of(clients[0]) == queue, f"{tag} ran from {clients[0]}"
