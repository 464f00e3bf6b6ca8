"""thugrq's analyst pages (thugrq.pages) through Flask's test client, on real analyses.

Five analyses of the test site (a 4-hop redirect chain, a hostile page, a download, a page that
cloaks by personality, seen as MSIE 6 and as Chrome) are made once for the module by a burst
worker on a Redis of the module's own, which each test reads (the harness empties its shared
Redis before every test); a job for a country nobody serves is left waiting.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import redis

from tests.conftest import BIN, ROOT
from tests.site import Site, pe_sample
from thugrq import dashboard, dashboard_guard, fleet
from thugrq.process import free_port
from thugrq.redis_server import start_redis

CHAIN = ["/chain/start", "/chain/meta", "/chain/js", "/chain/final"]


@dataclass(frozen=True)
class Analysed:
    redis_url: str
    chain: str
    hostile: str
    download: str
    #: The /cloak group's id, and its jobs' ids by personality.
    cloak_group: str
    cloak: dict[str, str]
    #: A job (and its group) queued for FR, which no worker serves.
    waiting: str
    waiting_group: str


@pytest.fixture(scope="module")
def analysed(
    tmp_path_factory: pytest.TempPathFactory, site: Site, no_real_dns: None
) -> Iterator[Analysed]:
    folder = tmp_path_factory.mktemp("pages")
    port = free_port()
    server = start_redis(port, folder, persist=False)
    url = f"redis://127.0.0.1:{port}/0"
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(THUGRQ_REDIS_URL=url, THUGRQ_HOME=str(folder / "home"),
               THUGRQ_ALLOW_PRIVATE_TARGETS="127.0.0.1/32")

    def enqueue(*args: str) -> list[dict]:
        done = subprocess.run([str(BIN / "thugrq"), "enqueue", *args, "--json"], env=env,
                              capture_output=True, text=True, timeout=300, check=True)
        return [json.loads(line) for line in done.stdout.splitlines()]

    try:
        (chain,), (hostile,), (download,) = (
            enqueue(site.url(path)) for path in ("/chain/start", "/hostile-all", "/download"))
        cloak = enqueue(site.url("/cloak"), "--useragent", "winxpie60", "--useragent", "win7chrome49")
        worker = subprocess.run([str(BIN / "thugrq-worker"), "--burst"], env=env,
                                capture_output=True, text=True, timeout=600)
        assert worker.returncode == 0, worker.stderr[-3000:]
        (waiting,) = enqueue("http://waiting.test/", "--country", "FR")
        yield Analysed(
            url, chain["id"], hostile["id"], download["id"], cloak[0]["group"],
            {job["useragent"]: job["id"] for job in cloak}, waiting["id"], waiting["group"],
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def client(analysed: Analysed):
    app = dashboard.build_app(analysed.redis_url, dashboard.accepted_hosts("127.0.0.1", 80))
    return app.test_client()


class Page(HTMLParser):
    """A page's elements (tag, attributes), in order, and its text as a reader sees it."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def section(markup: str, tag: str, element_id: str) -> str:
    """The markup of the element with this id (no element of the same tag nested in it)."""
    found = re.search(rf'<{tag}\b[^>]*\bid="{element_id}"[^>]*>.*?</{tag}>', markup, re.S)
    assert found, f"no <{tag} id={element_id}>"
    return found.group(0)


def get(client, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[-2000:]
    return response.get_data(as_text=True)


def test_the_verdict_card_says_what_happened_where_and_as_whom(client, analysed, site):
    verdict = section(get(client, f"/thugrq/job/{analysed.chain}"), "section", "verdict")
    for fact in ("completed", site.url("/chain/start"), site.url("/chain/final"), "winxpie60",
                 "no verified country", "Took"):
        assert fact in verdict
    assert re.search(r"\d+(\.\d+)? s, from 20\d\d-", verdict)


def test_the_verdict_card_lists_exploits_and_samples_with_hashes_and_sizes(client, analysed):
    exploit = section(get(client, f"/thugrq/job/{analysed.cloak['winxpie60']}"), "section", "verdict")
    assert 'class="alert"' in exploit.split('class="exploits"')[1].split("</dd>")[0]
    sample = section(get(client, f"/thugrq/job/{analysed.download}"), "section", "verdict")
    assert hashlib.sha256(pe_sample()).hexdigest() in sample
    assert f"PE, {len(pe_sample())} bytes" in sample


def test_the_redirect_chain_is_drawn_as_an_svg_box_per_page(client, analysed, site):
    graph = section(get(client, f"/thugrq/job/{analysed.chain}"), "svg", "redirects")
    labels = re.findall(r'<text [^>]*class="label">([^<]*)</text>', graph)
    assert labels == [site.url(path) for path in CHAIN]
    assert graph.count('<g class="hop">') == 4 and graph.count('<g class="arrow">') == 3
    assert re.findall(r'class="via">([^<]*)<', graph)[0] == "http-redirect"


def test_fetched_locations_are_a_table(client, analysed, site):
    table = section(get(client, f"/thugrq/job/{analysed.chain}"), "table", "locations")
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert [re.search(r">(http[^<]*)<", row).group(1) for row in rows] == [site.url(p) for p in CHAIN]


def test_a_hostile_pages_markup_and_urls_are_only_text(client, analysed):
    markup = get(client, f"/thugrq/job/{analysed.hostile}")
    page = Page(markup)
    text = "".join(page.text)
    assert "<img src=x onerror=window.pwned=1>" in text  # shown, as text
    assert '<a href="javascript:window.pwned=2">' in text
    assert "<script>" in text
    assert not [tag for tag, _ in page.elements if tag in ("script", "style", "iframe", "object")]
    assert not [(tag, name) for tag, attrs in page.elements for name in attrs if name.startswith("on")]
    links = [attrs.get("href") or "" for tag, attrs in page.elements if tag == "a"]
    assert not [href for href in links if not href.startswith(("/", "http://", "https://"))], links
    assert section(markup, "details", "raw").count("&lt;img src=x onerror") >= 1


def test_every_page_carries_the_policy_and_no_inline_script_or_style(client, analysed):
    policy = dashboard_guard.POLICY.format(hashes="")
    for path in (f"/thugrq/job/{analysed.hostile}", f"/thugrq/group/{analysed.cloak_group}",
                 "/thugrq/fleet", "/thugrq/job/no-such-job"):
        response = client.get(path)
        assert response.headers["Content-Security-Policy"] == policy, path
        tags = [tag for tag, _ in Page(response.get_data(as_text=True)).elements]
        assert "script" not in tags and "style" not in tags, path


def test_the_group_matrix_marks_the_personality_shown_another_page(client, analysed):
    markup = get(client, f"/thugrq/group/{analysed.cloak_group}")
    matrix = section(markup, "table", "matrix")
    assert "winxpie60" in matrix and "win7chrome49" in matrix
    assert matrix.count('class="differs"') >= 1
    for job_id in analysed.cloak.values():
        assert f'href="/thugrq/job/{job_id}"' in matrix
    assert "2 of 2 done" in markup and 'http-equiv="refresh"' not in markup


def test_a_group_still_running_says_how_far_it_is_and_reloads(client, analysed):
    markup = get(client, f"/thugrq/group/{analysed.waiting_group}")
    assert '<meta http-equiv="refresh" content="5">' in markup
    assert "0 of 1 done" in markup


def test_a_queued_job_shows_its_state_and_reloads(client, analysed):
    markup = get(client, f"/thugrq/job/{analysed.waiting}")
    assert '<dd class="status">queued</dd>' in section(markup, "section", "verdict")
    assert '<meta http-equiv="refresh" content="5">' in markup


def test_the_fleet_lists_live_workers_and_marks_a_country_nobody_serves(client, analysed):
    connection = redis.Redis.from_url(analysed.redis_url)
    record = fleet.WorkerRecord(
        name="IT.analyst-host.4242", country="IT", asn=64500, as_name="EXAMPLE-NET", thug="6.22",
        queues=["IT", "generic"], started=fleet.now(), last_seen=fleet.now(),
    )
    fleet.register(connection, record, ttl=60)
    try:
        table = section(get(client, "/thugrq/fleet"), "table", "fleet")
    finally:
        fleet.unregister(connection, record.name)
    assert "IT.analyst-host.4242" in table and "AS64500" in table and "6.22" in table
    unserved = re.findall(r'<tr class="unserved">(.*?)</tr>', table, re.S)
    assert len(unserved) == 1 and ">FR<" in unserved[0]


def test_a_workers_name_from_redis_is_shown_as_text(client, analysed):
    connection = redis.Redis.from_url(analysed.redis_url)
    name = 'IT.<img src=x onerror="window.pwned=1">.1'
    fleet.register(connection, fleet.WorkerRecord(
        name=name, country="IT", asn=None, as_name=None, thug="<b>6</b>", queues=["IT"],
        started=fleet.now(), last_seen=fleet.now(),
    ), ttl=60)
    try:
        page = Page(get(client, "/thugrq/fleet"))
    finally:
        fleet.unregister(connection, name)
    assert name in "".join(page.text) and "<b>6</b>" in "".join(page.text)
    assert [tag for tag, _ in page.elements if tag in ("img", "b")] == []


def test_the_fleet_links_a_busy_workers_current_job(redis_url, busy_worker):
    app = dashboard.build_app(redis_url, dashboard.accepted_hosts("127.0.0.1", 80))
    table = section(get(app.test_client(), "/thugrq/fleet"), "table", "fleet")
    assert busy_worker.name in table
    assert f'<a href="/thugrq/job/{busy_worker.job_id}">' in table


def test_an_unknown_job_or_group_is_a_404_that_says_so(client, analysed):
    assert "no job &#39;no-such-job&#39; in Redis" in get(client, "/thugrq/job/no-such-job", 404)
    assert "no group &#39;no-such-group&#39; in Redis" in get(client, "/thugrq/group/no-such-group", 404)


def test_rq_dashboards_job_page_links_to_the_analysis_page(client, analysed):
    response = client.get(f"/0/view/job/{analysed.chain}")
    markup = response.get_data(as_text=True)
    assert f'<a href="/thugrq/job/{analysed.chain}">' in markup
    policy = response.headers["Content-Security-Policy"]
    inline = [script["text"] for script, attributes in dashboard_guard.page_scripts(markup)
              if "src" not in attributes and attributes.get("type", "text/javascript") == "text/javascript"]
    assert inline and all(dashboard_guard.script_hash(text) in policy for text in inline)


def test_the_stylesheet_is_served_from_the_package(client, analysed):
    response = client.get("/thugrq/static/thugrq.css")
    assert response.status_code == 200 and response.mimetype == "text/css"
    assert Path(dashboard.__file__).with_name("static").joinpath("thugrq.css").is_file()


def test_a_pip_install_ships_the_templates_and_the_stylesheet():
    setup = ast.parse((ROOT / "setup.py").read_text())
    (call,) = [node for node in ast.walk(setup) if isinstance(node, ast.Call)
               and getattr(node.func, "id", None) == "setup"]
    (shipped,) = [ast.literal_eval(k.value) for k in call.keywords if k.arg == "package_data"]
    package = ROOT / "thugrq"
    files = [path.relative_to(package).as_posix() for folder in ("templates", "static")
             for path in (package / folder).rglob("*") if path.is_file()]
    assert files and [f for f in files if not any(fnmatch.fnmatch(f, p) for p in shipped["thugrq"])] == []
