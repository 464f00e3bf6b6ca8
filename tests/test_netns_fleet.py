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
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler

from tests import netns
from tests.conftest import BIN, stop_all, wait_for
from tests.dns_standin import DnsStandIn
from tests.site import Site
from thugrq import fencing, fleet
from thugrq.job import fetch
from thugrq.process import free_port
from thugrq.redis_server import launch_redis
from thugrq.submit import wait

pytestmark = pytest.mark.alone  # bin/test runs it after the rest, with nothing else running

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
#: Every worker looks its location up again this often (thugrq-worker --recheck).
RECHECK = 3
#: Variables that could send a worker's traffic anywhere but the lab, or point it elsewhere.
DROPPED = (
    "http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
    "ALL_PROXY", "NO_PROXY", "REDIS_URL", "THUGRQ_ALLOW_PRIVATE_TARGETS",
)


@dataclass(frozen=True)
class Fleet:
    """The running lab: its hosts, the services on its bridge, the workers' logs, and each
    host's running worker (a test that kills or stops one starts its successor)."""

    lab: netns.Lab
    redis_url: str
    site: Site
    dns: DnsStandIn
    logs: dict[str, Path]
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

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
        for host in HOSTS:
            start_worker(running, host)
        try:
            connection = redis.Redis.from_url(bridge_redis)
            try:
                wait_for(lambda: len(fleet.workers(connection)) == len(HOSTS), timeout=60)
            except AssertionError:
                pytest.fail(f"the workers did not all register:\n{running.said()}")
            yield running
        finally:
            stop_all(list(running.workers.values()))


def start_worker(running: Fleet, host: str) -> subprocess.Popen:
    """`thugrq-worker` inside the namespace of `host`, told nothing of where it is, re-checking
    its location every RECHECK seconds; named after its host (and how many came before it
    there), so that results and fleet records say which host ran what."""
    name = f"{host}.{int(running.names[host].split('.')[1]) + 1 if host in running.names else 0}"
    environment = {key: value for key, value in os.environ.items() if key not in DROPPED}
    environment.update(
        THUGRQ_REDIS_URL=running.redis_url, THUGRQ_DNS=running.dns.address,
        THUGRQ_DNS_TIMEOUT="2", THUGRQ_HOME=str(running.logs[host].with_suffix("")),
    )
    argv = [
        str(BIN / "thugrq-worker"), "--allow-private-targets", str(netns.LAB),
        "--recheck", str(RECHECK), "--name", name,
    ]
    with open(running.logs[host], "a") as log:
        process = subprocess.Popen(
            running.lab.command(host, argv), env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    running.workers[host], running.names[host] = process, name
    return process


def enqueue(running: Fleet, queue: str, paths: list[str], timeout: int = 60) -> dict[str, str]:
    """Each of `paths` (a page of the site, with a `job` tag in its query) on `queue`:
    {job id: tag}."""
    urls = [running.site.url(path) for path in paths]
    environment = {name: value for name, value in os.environ.items() if name not in DROPPED}
    environment["THUGRQ_REDIS_URL"] = running.redis_url
    ran = subprocess.run(
        [str(BIN / "thugrq"), "enqueue", "--queue", queue, "--timeout", str(timeout), "--json", *urls],
        env=environment, capture_output=True, text=True, timeout=60, check=True,
    )
    jobs = [json.loads(line) for line in ran.stdout.splitlines()]
    return {job["id"]: tag_of(job["url"]) for job in jobs}


def tag_of(target: str) -> str | None:
    """The `job` tag in a URL's or a request target's query string."""
    return parse_qs(urlsplit(target).query).get("job", [None])[0]


def fetched_by(site: Site) -> dict[str, list[str]]:
    """{tag: the client address of each request for a tagged page}: where each job's analysis
    ran, once per run, in the site's own log."""
    clients: dict[str, list[str]] = defaultdict(list)
    for visit in list(site.visits):
        tag = tag_of(visit.target)
        if tag:
            clients[tag].append(visit.client)
    return clients


def finish(running: Fleet, jobs: dict[str, str], timeout: float = 100) -> None:
    """Wait until every job of `jobs` is finished; fail with the workers' logs otherwise."""
    states = wait(redis.Redis.from_url(running.redis_url), list(jobs), timeout=timeout)
    unfinished = [(s.id, jobs[s.id], s.status, s.reason) for s in states if s.status != "finished"]
    assert not unfinished, f"{unfinished}\n{running.said()}"


def record(running: Fleet, host: str) -> fleet.WorkerRecord | None:
    """The fleet record (`thugrq workers`) of the worker now running on `host`, if any."""
    records = fleet.workers(redis.Redis.from_url(running.redis_url))
    return next((r for r in records if r.name == running.names[host]), None)


def documents(running: Fleet, jobs: dict[str, str]) -> dict[str, dict]:
    """{tag: the latest result document} of finished `jobs`."""
    connection = redis.Redis.from_url(running.redis_url)
    return {tag: fetch(connection, job_id).return_value() for job_id, tag in jobs.items()}


def test_each_host_finds_its_own_country_from_the_address_its_queries_come_from(fleet_lab):
    records = fleet.workers(redis.Redis.from_url(fleet_lab.redis_url))
    assert sorted(record.country for record in records) == ["DE", "IT", "IT", "US"]
    assert all(record.queues == [record.country, "generic"] for record in records)
    assert set(fleet_lab.dns.sources) == ADDRESSES


def test_country_jobs_are_fetched_only_from_their_country_and_each_job_once(fleet_lab):
    jobs: dict[str, str] = {}
    for queue in QUEUES:
        tags = [f"{queue}-{n}" for n in range(URLS_PER_QUEUE)]
        jobs.update(enqueue(fleet_lab, queue, [f"/chain/final?job={tag}" for tag in tags]))
    assert len(jobs) == len(QUEUES) * URLS_PER_QUEUE >= 40
    connection = redis.Redis.from_url(fleet_lab.redis_url)
    finish(fleet_lab, jobs)

    fetches = fetched_by(fleet_lab.site)
    assert set(fetches) == set(jobs.values())  # no page but the jobs' own was asked for
    for job_id, tag in jobs.items():
        queue, clients = tag.split("-")[0], fetches[tag]
        assert len(clients) == 1, f"{tag} ({job_id}) fetched by {clients}: not analysed once"
        assert len(fetch(connection, job_id).results()) == 1, f"{tag} ({job_id}): several results"
        assert clients[0] in ADDRESSES
        if queue != "generic":
            assert country_of(clients[0]) == queue, f"{tag} ran from {clients[0]}"


def address_of(running: Fleet, client: str) -> str:
    """The host whose address `client` is."""
    return next(host for host, h in running.lab.hosts.items() if h.address == client)


def kill_host(running: Fleet, host: str) -> float:
    """SIGKILL every process of `host` (its worker, horse and scheduler: a host lost at once,
    nothing released); when it happened (time.monotonic)."""
    for pid in running.lab.pids(host):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed = time.monotonic()
    running.workers[host].wait(timeout=10)
    return killed


def test_a_host_moved_from_italy_to_the_us_serves_the_us_within_the_recheck_and_says_so(fleet_lab):
    """it2's address moves from the Italian range to the American one under its running worker
    (a VPN reconnecting elsewhere): it must notice by itself, serve US instead of IT, and its
    results must say where each analysis really ran from."""
    lab, host = fleet_lab.lab, "it2"
    old, new = str(lab.hosts[host].interface), "198.18.2.3/24"
    before = enqueue(fleet_lab, "IT", [f"/paced?seconds=1&job=premove-{n}" for n in range(6)])
    finish(fleet_lab, before)
    lab.readdress(host, new)
    moved = time.monotonic()
    try:
        try:
            wait_for(lambda: (r := record(fleet_lab, host)) and r.queues == ["US", "generic"], 60)
        except AssertionError:
            pytest.fail(f"{host} never served US:\n{fleet_lab.said()}")
        noticed = time.monotonic() - moved
        print(f"\n{host} moved IT -> US: serving US {noticed:.1f} s later (--recheck {RECHECK})")
        # The next check comes once the blocking dequeue on a connection from the vanished
        # address times out (RQ: its wait, RECHECK here, + 10 s).
        assert noticed <= 2 * RECHECK + 12
        assert "this host moved" in fleet_lab.logs[host].read_text()
        rows = {row.country: row.workers for row in fleet.countries(redis.Redis.from_url(fleet_lab.redis_url))}
        assert rows["IT"] == 1 and rows["US"] == 2

        after = {
            **enqueue(fleet_lab, "IT", [f"/chain/final?job=postmove-IT-{n}" for n in range(6)]),
            **enqueue(fleet_lab, "US", [f"/paced?seconds=1&job=postmove-US-{n}" for n in range(6)]),
        }
        finish(fleet_lab, after)
        fetches, moved_address = fetched_by(fleet_lab.site), new.split("/")[0]
        for tag in after.values():
            (client,) = fetches[tag]
            assert country_of(client) == tag.split("-")[1], f"{tag} ran from {client}"
        assert moved_address in {fetches[tag][0] for tag in after.values()}  # it served US

        name, results = fleet_lab.names[host], documents(fleet_lab, {**before, **after})
        where = [doc["worker"]["location"] for doc in results.values() if doc["worker"]["name"] == name]
        assert {(w["address"], w["country"]) for w in where} == {
            (old.split("/")[0], "IT"), (moved_address, "US")
        }, where
    finally:
        lab.readdress(host, old)
        wait_for(lambda: (r := record(fleet_lab, host)) and r.queues == ["IT", "generic"], 60)


def test_a_lost_italian_hosts_job_runs_again_on_the_other_within_a_minute(fleet_lab):
    """Every process of the Italian host analysing a slow page is killed at once: the other
    Italian host analyses it again within 60 s (never the US or German host), and the lost
    host leaves `thugrq workers` within 60 s."""
    jobs = enqueue(fleet_lab, "IT", ["/paced?seconds=6&job=lost"])
    first = wait_for(lambda: fetched_by(fleet_lab.site).get("lost"), timeout=30)[0]
    victim = address_of(fleet_lab, first)
    lost_name = fleet_lab.names[victim]
    time.sleep(1)  # mid-analysis: the page is in, its slow script still loading
    killed = kill_host(fleet_lab, victim)
    try:
        rerun = wait_for(lambda: len(fetched_by(fleet_lab.site)["lost"]) > 1, timeout=90) and (
            time.monotonic() - killed
        )
        gone = wait_for(lambda: record(fleet_lab, victim) is None, timeout=90) and (
            time.monotonic() - killed
        )
        print(f"\nlost {victim}: its job analysed again {rerun:.1f} s, its record gone {gone:.1f} s after")
        assert rerun < 60 and gone < 60
        finish(fleet_lab, jobs)
        clients = fetched_by(fleet_lab.site)["lost"]
        assert clients[0] == first and len(clients) == 2
        assert country_of(clients[1]) == "IT" and clients[1] != first
        listed = thugrq_cli(fleet_lab, "workers", "--json")
        assert lost_name not in listed and fleet_lab.names["it1" if victim == "it2" else "it2"] in listed
    finally:
        start_worker(fleet_lab, victim)
        wait_for(lambda: record(fleet_lab, victim), timeout=60)


def test_a_job_lost_with_the_only_italian_worker_is_rescued_by_one_started_after(fleet_lab):
    """The only Italian worker, holding the IT queue's scheduler lock as the only one there does,
    is lost mid-analysis; the only worker able to take its job starts right after: the job
    still runs again within 60 s of the loss (the lock outlives the host by 61 s)."""
    connection = redis.Redis.from_url(fleet_lab.redis_url)
    for host in ("it1", "it2"):
        fleet_lab.workers[host].send_signal(signal.SIGTERM)
    for host in ("it1", "it2"):
        fleet_lab.workers[host].wait(timeout=30)
    # A host killed by an earlier test may still hold the lock, for 61 s after its death.
    wait_for(lambda: scheduler_pid(connection, "IT") is None, timeout=70)
    start_worker(fleet_lab, "it1")
    wait_for(lambda: scheduler_pid(connection, "IT") in fleet_lab.lab.pids("it1"), timeout=60)
    jobs = enqueue(fleet_lab, "IT", ["/paced?seconds=6&job=late"])
    first = wait_for(lambda: fetched_by(fleet_lab.site).get("late"), timeout=30)[0]
    time.sleep(1)  # mid-analysis
    killed = kill_host(fleet_lab, "it1")
    try:
        start_worker(fleet_lab, "it2")
        rerun = wait_for(lambda: len(fetched_by(fleet_lab.site)["late"]) > 1, timeout=90) and (
            time.monotonic() - killed
        )
        print(f"\nlate rescuer: the lost job analysed again {rerun:.1f} s after the loss")
        assert rerun < 60
        finish(fleet_lab, jobs)
        assert fetched_by(fleet_lab.site)["late"] == [first, fleet_lab.lab.hosts["it2"].address]
        assert len(fetch(connection, next(iter(jobs))).results()) == 1
    finally:
        start_worker(fleet_lab, "it1")
        wait_for(lambda: record(fleet_lab, "it1") and record(fleet_lab, "it2"), timeout=60)


def scheduler_pid(connection: redis.Redis, queue: str) -> int | None:
    """The process id of the scheduler holding `queue`'s lock, if one does."""
    holder = connection.get(RQScheduler.get_locking_key(queue))
    pid = holder and connection.hget(SCHEDULER_KEY_TEMPLATE % holder.decode(), "pid")
    return int(pid) if pid else None


def thugrq_cli(running: Fleet, *arguments: str) -> str:
    """What `thugrq ARGUMENTS` prints, against the lab's Redis."""
    environment = {name: value for name, value in os.environ.items() if name not in DROPPED}
    environment["THUGRQ_REDIS_URL"] = running.redis_url
    return subprocess.run(
        [str(BIN / "thugrq"), *arguments], env=environment, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout


CUT_SECONDS = 20


def test_a_host_cut_off_from_redis_for_20_s_reconnects_and_every_job_runs_once(fleet_lab):
    """The German host's link goes down for CUT_SECONDS while it analyses a slow page (a
    partition: it reaches neither Redis nor the site): its worker comes back by itself, and
    every job submitted, before, during and after, finishes, each analysed once; a job analysed
    twice is allowed only when its first run's result never reached Redis, and is reported."""
    connection = redis.Redis.from_url(fleet_lab.redis_url)
    host, worker = "de1", fleet_lab.workers["de1"]
    jobs = enqueue(fleet_lab, "DE", [f"/paced?seconds={CUT_SECONDS + 5}&job=cut"])
    script = f"/slow?seconds={float(CUT_SECONDS + 5)}"  # the page is in, its slow script asked for
    wait_for(lambda: any(visit.target == script for visit in fleet_lab.site.visits), timeout=30)
    fleet_lab.lab.set_link(host, up=False)
    try:
        for queue in QUEUES:
            jobs.update(enqueue(fleet_lab, queue, [f"/chain/final?job=during-{queue}-{n}" for n in range(3)]))
        time.sleep(CUT_SECONDS)
    finally:
        fleet_lab.lab.set_link(host, up=True)
    for queue in QUEUES:
        jobs.update(enqueue(fleet_lab, queue, [f"/chain/final?job=after-{queue}-{n}" for n in range(3)]))
    finish(fleet_lab, jobs, timeout=120)

    assert worker.poll() is None, f"the {host} worker did not ride out the cut:\n{fleet_lab.said()}"
    assert record(fleet_lab, host) is not None
    fetches, again = fetched_by(fleet_lab.site), []
    for job_id, tag in jobs.items():
        clients, results = fetches[tag], fetch(connection, job_id).results()
        assert len(results) == 1, f"{tag}: {len(results)} results"
        assert len(clients) in (1, 2), f"{tag} fetched by {clients}"
        again += [tag] if len(clients) == 2 else []
        queue = tag.split("-")[1] if tag != "cut" else "DE"
        if queue != "generic":
            assert all(country_of(client) == queue for client in clients), f"{tag}: {clients}"
    print(f"\nsubmitted {len(jobs)} / finished {len(jobs)} / analysed again after the cut: {len(again)} {again}")
    assert set(fetched_by(fleet_lab.site)) >= set(jobs.values())


def test_an_italian_host_cut_off_until_its_job_ran_elsewhere_does_not_overwrite_that_run(fleet_lab):
    """Fencing across a partition: the Italian host analysing a slow page loses its link for
    as long as it takes the other Italian host to run the job again; back online, its stale run
    ends and its outcome is refused (kept as superseded), and the job's result stays the
    rescuer's, its only one."""
    connection = redis.Redis.from_url(fleet_lab.redis_url)
    (job_id,) = enqueue(fleet_lab, "IT", ["/paced?seconds=7&job=fenced"], timeout=90)
    first = wait_for(lambda: fetched_by(fleet_lab.site).get("fenced"), timeout=30)[0]
    victim = address_of(fleet_lab, first)
    rescuer = "it1" if victim == "it2" else "it2"
    script = "/slow?seconds=7.0"  # the page is in, its slow script asked for: cut mid-analysis
    wait_for(lambda: any(visit.target == script for visit in fleet_lab.site.visits), timeout=30)
    fleet_lab.lab.set_link(victim, up=False)
    cut = time.monotonic()
    try:
        wait_for(lambda: fetch(connection, job_id).get_status(refresh=True) == "finished", timeout=120)
    finally:
        fleet_lab.lab.set_link(victim, up=True)
    print(f"\n{victim} cut off {time.monotonic() - cut:.1f} s: its job ran again on {rescuer}")
    try:
        [late] = wait_for(lambda: fencing.superseded(connection, job_id), timeout=120)
    except AssertionError:
        pytest.fail(f"the stale run's outcome was never refused:\n{fleet_lab.said()}")
    assert late["worker"] == fleet_lab.names[victim]
    current = fetch(connection, job_id)
    assert current.get_status(refresh=True) == "finished" and len(current.results()) == 1
    document = current.return_value()
    assert (document["worker"]["name"], document["status"]) == (fleet_lab.names[rescuer], "completed")
    assert fetched_by(fleet_lab.site)["fenced"] == [first, fleet_lab.lab.hosts[rescuer].address]
    shown = thugrq_cli(fleet_lab, "result", job_id)
    assert f"Superseded   an earlier attempt by {fleet_lab.names[victim]}" in shown
    assert fleet_lab.workers[victim].poll() is None
    wait_for(lambda: (r := record(fleet_lab, victim)) and r.queues == ["IT", "generic"], 60)
