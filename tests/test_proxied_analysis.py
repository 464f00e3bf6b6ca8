"""Analyses through a worker's proxy (issue 15): every fetch leaves from the proxy's exit, never
from this host, and an analysis whose proxy died says so instead of passing for one made there.

A real microsocks on 127.0.0.1 sends what it relays from 127.0.0.2 (its `-b`), so the test
site's log tells the exit (127.0.0.2) from this host (127.0.0.1).
"""

from __future__ import annotations

import pytest

from tests.site import Site
from tests.test_analysis import analyse_forked
from tests.test_geo_proxy import EXIT, socks5, start_proxy  # noqa: F401 - fixtures
from thugrq.context import AnalysisContext
from thugrq.process import free_port
from thugrq.proxy import Proxy
from thugrq.targets import Policy

#: A loopback port nothing listens on: a dead proxy.
DEAD = f"socks5://127.0.0.1:{free_port()}"
#: The site on 127.0.0.1 is allowed; the rest of loopback is not.
POLICY = Policy.parse("127.0.0.1/32")


@pytest.fixture
def own_site():
    with Site() as running:
        yield running


def through(url: str) -> AnalysisContext:
    return AnalysisContext(policy=POLICY, proxy=Proxy.parse(url, {}))


def test_every_fetch_of_a_proxied_analysis_leaves_from_the_proxy_exit(own_site, socks5):
    document = analyse_forked(own_site.url("/chain/start"), through(socks5().url))
    assert document["status"] == "completed", document["error"]
    assert len(own_site.visits) >= 3  # the chain's redirect, meta refresh and final page
    assert {visit.client for visit in own_site.visits} == {EXIT}


def test_thugs_async_prefetcher_goes_through_the_proxy_too(own_site, socks5):
    page = own_site.url("/script?src=" + own_site.url("/chain/final"))
    document = analyse_forked(page, through(socks5().url), {"async_prefetch": True})
    assert document["status"] == "completed", document["error"]
    assert "/chain/final" in own_site.requests
    assert {visit.client for visit in own_site.visits} == {EXIT}
    assert document["summary"]["refused"] == []


def test_an_analysis_whose_proxy_is_down_is_an_error_proxy_unreachable(own_site):
    document = analyse_forked(own_site.url("/chain/final"), through(DEAD))
    assert document["status"] == "error"
    assert document["error"].startswith("proxy unreachable: " + DEAD)
    assert own_site.visits == []  # nothing fetched from this host instead


def test_a_target_the_policy_refuses_is_refused_through_the_proxy_too(own_site, socks5):
    forbidden = "http://127.0.0.3:9/secret"
    document = analyse_forked(own_site.url(f"/redirect?to={forbidden}"), through(socks5().url))
    [refusal] = document["summary"]["refused"]
    assert refusal["address"] == "127.0.0.3" and "loopback" in refusal["reason"]


def test_a_job_with_a_proxy_of_its_own_is_refused_by_a_proxied_worker(own_site, socks5):
    options = {"proxy": "socks5://127.0.0.1:9"}
    document = analyse_forked(own_site.url("/chain/final"), through(socks5().url), options)
    assert document["status"] == "refused" and "proxy of its own" in document["error"]
    assert own_site.visits == []
