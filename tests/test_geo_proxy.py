"""Locating a proxy's exit: geo's questions over TCP through real proxies on loopback.

Debian's `microsocks` is the SOCKS5 proxy (its `-b` binds what it sends to 127.0.0.2, so the
stand-in, answering what-is-my-IP with the source address, sees the exit and not this host);
PyPI's `pproxy` is the HTTP CONNECT one. Nothing leaves 127.0.0.0/8.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import BIN, wait_listening
from tests.dns_standin import DnsStandIn
from thugrq import geo, location
from thugrq.exceptions import GeoError
from thugrq.process import free_port
from thugrq.proxy import PASSWORD_VARIABLE, USERNAME_VARIABLE, Proxy

HOST, EXIT = "127.0.0.1", "127.0.0.2"
CREDENTIALS = {USERNAME_VARIABLE: "analyst", PASSWORD_VARIABLE: "s3cret-pass"}


#: How a proxy is started on a port (the command), for `start_proxy`.
Command = Callable[[int], list[str]]


@dataclass(frozen=True)
class RunningProxy:
    url: str
    process: subprocess.Popen


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[[str, Command], RunningProxy]]:
    """Start a proxy (`scheme`, its command for a port) on a free loopback port; every one
    started is killed at the end."""
    started: list[subprocess.Popen] = []

    def start(scheme: str, command: Command) -> RunningProxy:
        port = free_port()
        log = tmp_path / f"proxy-{port}.log"
        with open(log, "w") as handle:
            process = subprocess.Popen(command(port), stdout=handle, stderr=subprocess.STDOUT)
        started.append(process)
        wait_listening(HOST, port, process, log)
        return RunningProxy(f"{scheme}://{HOST}:{port}", process)

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def socks5(start_proxy) -> Callable[..., RunningProxy]:
    """`socks5(*extra)` starts microsocks, exiting from 127.0.0.2, with `extra` arguments."""
    if not shutil.which("microsocks"):
        pytest.skip("microsocks is not installed (apt-get install microsocks)")
    return lambda *extra: start_proxy(
        "socks5", lambda port: ["microsocks", "-i", HOST, "-p", str(port), "-b", EXIT, *extra]
    )


@pytest.fixture
def http_proxy(start_proxy) -> RunningProxy:
    """pproxy as an HTTP CONNECT proxy."""
    return start_proxy("http", lambda port: [str(BIN / "pproxy"), "-l", f"http://{HOST}:{port}"])


@pytest.fixture
def dead_proxy() -> str:
    """A loopback port nothing listens on (free_port's probe has closed it)."""
    return f"socks5://{HOST}:{free_port()}"


def with_password(socks5: Callable[..., RunningProxy]) -> RunningProxy:
    """microsocks asking for CREDENTIALS."""
    return socks5("-u", CREDENTIALS[USERNAME_VARIABLE], "-P", CREDENTIALS[PASSWORD_VARIABLE])


@pytest.fixture
def lab(cymru: DnsStandIn) -> DnsStandIn:
    """The stand-in answering as the real services do: this host is in IT, the exit in DE."""
    cymru.reflect = True
    cymru.add_prefix(f"{HOST}/32", "IT", 64501)
    cymru.add_prefix(f"{EXIT}/32", "DE", 64502)
    return cymru


def test_geo_through_a_socks5_proxy_locates_the_exit_not_this_host(lab, socks5):
    proxy = Proxy.parse(socks5().url)
    assert geo.locate().country == "IT"
    found = geo.locate(proxy=proxy)
    assert (found.address, found.country, found.asn) == (EXIT, "DE", 64502)


def test_every_question_through_a_proxy_goes_over_tcp_from_the_exit(lab, socks5):
    geo.locate(proxy=Proxy.parse(socks5().url))
    assert set(lab.transports) == {"tcp"} and set(lab.sources) == {EXIT}
    assert {rdtype for _, rdtype in lab.queries} == {"A", "TXT"}  # address, origin, AS name


def test_without_a_proxy_questions_stay_on_udp(lab):
    geo.locate()
    assert lab.transports and set(lab.transports) == {"udp"}


def test_geo_through_an_http_connect_proxy_finds_what_the_stand_in_places(cymru, http_proxy):
    cymru.place("192.0.2.10", "IT", asn=64500, as_name="EXAMPLE-IT Example Italia")
    found = geo.locate(proxy=Proxy.parse(http_proxy.url))
    assert found == geo.Location(
        "192.0.2.10", "IT", 64500, "192.0.2.0/24", "ripencc", "EXAMPLE-IT Example Italia"
    )
    assert set(cymru.transports) == {"tcp"}


def test_proxy_credentials_from_the_environment_open_the_tunnel(lab, socks5):
    url = with_password(socks5).url
    assert geo.locate(proxy=Proxy.parse(url, CREDENTIALS)).country == "DE"


def test_a_wrong_proxy_password_is_proxy_unreachable(lab, socks5):
    url = with_password(socks5).url
    wrong = {**CREDENTIALS, PASSWORD_VARIABLE: "not-it"}
    with pytest.raises(GeoError, match="proxy unreachable"):
        geo.locate(proxy=Proxy.parse(url, wrong))
    assert lab.queries == []


def test_a_proxy_not_listening_fails_the_lookup_as_proxy_unreachable(lab, dead_proxy):
    with pytest.raises(GeoError, match="proxy unreachable") as failure:
        geo.locate(proxy=Proxy.parse(dead_proxy))
    assert failure.value.step == "public address" and lab.queries == []


def test_a_given_address_is_placed_through_the_proxy_too(lab, socks5):
    assert geo.locate(EXIT, proxy=Proxy.parse(socks5().url)).country == "DE"
    assert set(lab.transports) == {"tcp"}


def test_a_worker_behind_a_dead_proxy_serves_generic_only(lab, dead_proxy):
    keeper = location.for_worker(None, None, False, 300, Proxy.parse(dead_proxy))
    assert keeper.country is None and keeper.queues() == ["generic"]
    assert keeper.whereabouts is not None and keeper.whereabouts.address is None


def test_a_keeper_rechecks_through_its_proxy_and_loses_the_country_when_it_dies(lab, socks5):
    proxy = socks5()
    keeper = location.for_worker(None, None, False, 300, Proxy.parse(proxy.url))
    assert keeper.country == "DE"
    proxy.process.kill()
    proxy.process.wait(timeout=10)
    keeper.check()
    assert keeper.country is None and keeper.queues() == ["generic"]


def test_geo_command_json_names_the_proxy_never_its_credentials(lab, socks5, thugrq, env):
    url = with_password(socks5).url
    located = thugrq(
        "geo", "--proxy", url, "--json",
        env={**env, "THUGRQ_DNS": lab.address, **CREDENTIALS},
    )
    assert located.returncode == 0, located.stderr
    document = json.loads(located.stdout)
    assert (document["address"], document["country"], document["proxy"]) == (EXIT, "DE", url)
    assert CREDENTIALS[PASSWORD_VARIABLE] not in located.stdout + located.stderr


def test_geo_command_through_a_dead_proxy_exits_non_zero_saying_so(lab, thugrq, dead_proxy):
    failed = thugrq("geo", "--proxy", dead_proxy)
    assert failed.returncode != 0
    assert "proxy unreachable" in failed.stderr and dead_proxy in failed.stderr


def test_geo_command_refuses_credentials_in_the_proxy_url(thugrq):
    refused = thugrq("geo", "--proxy", f"socks5://analyst:s3cret-pass@{HOST}:1")
    assert refused.returncode != 0
    assert USERNAME_VARIABLE in refused.stderr and PASSWORD_VARIABLE in refused.stderr
    assert "s3cret-pass" not in refused.stderr


def test_worker_refuses_a_bogus_proxy_before_starting(burst_worker, connection):
    refused = burst_worker("--proxy", "bogus://x")
    assert refused.returncode != 0 and "invalid proxy" in refused.stderr
    assert connection.keys("rq:worker:*") == []


def test_worker_requiring_a_country_behind_a_dead_proxy_exits_saying_so(burst_worker, dead_proxy):
    failed = burst_worker("--proxy", dead_proxy, "--require-country")
    assert failed.returncode != 0 and "proxy unreachable" in failed.stderr
