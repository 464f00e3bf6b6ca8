"""The dashboard against whoever may write `rq:*` keys, or lure the analyst's browser.

Hostile queue names, worker fields and result keys show as text and run nothing (in headless
Chromium); every response carries a strict Content-Security-Policy under which rq-dashboard's
pages still work; only the dashboard's own Hosts are answered (DNS rebinding), and state
changes only by POST from its own pages (CSRF).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import rq_dashboard
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from tests.test_browser import browser, expect, page  # noqa: F401 - shared fixtures
from tests.test_dashboard import app  # noqa: F401 - shared fixture
from thugrq import dashboard as thugrq_dashboard
from thugrq import dashboard_guard

#: Markup that runs a script wherever a page inserts it as HTML, in content or in an attribute.
PAYLOAD = '"><img src=x onerror=window.pwned=1>'
UNDERSCORE = Path(rq_dashboard.__file__).parent / "static" / "js" / "underscore-umd-min.js"
FOREIGN = "http://attacker.example"


@pytest.fixture
def client(app):
    return app.test_client()


def add_job(connection: redis.Redis) -> Job:
    """A saved thugrq-like JSON job on `generic` (nothing runs it: no worker in these tests)."""
    job = Job.create(
        "thugrq.analysis.analyze", connection=connection, serializer=JSONSerializer,
        origin="generic", description="thug http://a.test/",
    )
    job.save()
    return job


def generic(connection: redis.Redis) -> Queue:
    return Queue("generic", connection=connection, serializer=JSONSerializer)


@pytest.fixture
def queued(connection: redis.Redis) -> Queue:
    """`generic` with two jobs waiting."""
    queue = generic(connection)
    for _ in range(2):
        queue.enqueue_job(add_job(connection))
    return queue


@pytest.fixture
def hostile_queue(connection: redis.Redis) -> None:
    connection.sadd("rq:queues", f"rq:queue:{PAYLOAD}")


@pytest.fixture
def hostile_worker(connection: redis.Redis) -> None:
    """A worker registered by hand: its name, queues, RQ and Python versions are the payload."""
    key = f"rq:worker:{PAYLOAD}"
    fields = {"queues": f"{PAYLOAD},generic", "version": PAYLOAD, "python_version": PAYLOAD}
    connection.hset(key, mapping={**fields, "state": "idle"})
    connection.sadd("rq:workers", key)


@pytest.fixture
def hostile_job(connection: redis.Redis) -> str:
    """A finished job whose result has the payload as a key and a value."""
    job = add_job(connection)
    job.set_status(JobStatus.FINISHED)
    Result.create(job, Result.Type.SUCCESSFUL, ttl=600, return_value={PAYLOAD: PAYLOAD})
    return job.id


@pytest.fixture
def problems(page) -> list[str]:
    """Console errors (CSP violations among them) and uncaught errors of the test's page."""
    seen: list[str] = []
    page.on("console", lambda shown: seen.append(shown.text) if shown.type == "error" else None)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


def assert_ran_nothing(page, container: str) -> None:
    """The payload was inserted as text: no element made of it, and it ran nothing."""
    assert page.locator(f"{container} img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_queues_page_shows_a_hostile_queue_name_as_text(page, problems, hostile_queue, dashboard):
    page.goto(dashboard() + "0/view/queues")
    name = page.locator("table#queues tr[data-role=queue] td").first
    expect(name).to_have_text(PAYLOAD)
    assert_ran_nothing(page, "table#queues")
    assert problems == []


def test_workers_page_shows_hostile_worker_fields_as_text(
    page, problems, hostile_worker, dashboard
):
    page.goto(dashboard() + "0/view/workers")
    cells = page.locator("table#workers tr[data-role=worker] td")
    expect(cells.nth(0)).to_have_text(PAYLOAD)
    expect(cells.nth(0)).to_have_attribute("title", f"RQ {PAYLOAD} / Python {PAYLOAD}")
    expect(cells.nth(2)).to_have_text(f"{PAYLOAD}, generic")
    assert_ran_nothing(page, "table#workers")
    assert problems == []


def test_job_page_shows_hostile_result_keys_as_text(page, problems, hostile_job, dashboard):
    page.goto(dashboard() + f"0/view/job/{hostile_job}")
    shown = PAYLOAD.replace('"', '\\"')  # a JSON string
    expect(page.locator("#job-data pre").first).to_contain_text(f'"{shown}": "{shown}"')
    assert_ran_nothing(page, "#job-data")
    assert problems == []


def test_markup_that_escaping_missed_would_still_run_nothing(page, problems, dashboard):
    page.goto(dashboard() + "0/view/queues")
    expect(page.locator("table#queues tbody")).to_have_text("No queues.")
    page.evaluate("""() => {
        document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=window.pwned=1>');
        $('body').append('<script>window.pwned = 2<\\/script>');
    }""")
    expect(page.locator("body > img")).to_have_count(1)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("window.pwned") is None
    assert any("Content Security Policy" in problem for problem in problems), problems


def test_the_jobs_page_empties_a_queue_from_its_own_button(page, problems, queued, dashboard):
    """A same-origin POST, as rq-dashboard's buttons send it (jQuery), under the policy."""
    page.goto(dashboard() + "0/view/jobs/generic/queued/8/asc/1")
    expect(page.locator("table#jobs tr[data-role=job]")).to_have_count(2)
    page.locator("#empty-btn").click()
    page.locator("#confirmation-modal-yes").click()
    expect(page.locator("table#jobs tbody")).to_have_text("No jobs.")
    assert queued.count == 0
    assert problems == []


def test_a_page_of_another_origin_cannot_empty_a_queue(page, queued, dashboard, site):
    base = dashboard()
    page.goto(site.url("/chain/final"))
    page.evaluate(
        "url => fetch(url, {method: 'POST', mode: 'no-cors'})", base + "queue/generic/queued/empty"
    )
    assert queued.count == 2


def test_templates_compiled_on_the_server_are_underscores_own(page, client, hostile_job):
    """What each page gets instead of `_.template`'s `new Function` is what underscore makes."""
    paths = ["/", "/0/view/workers", "/0/view/jobs", f"/0/view/job/{hostile_job}"]
    templates = {
        text for path in paths
        for text in dashboard_guard.page_templates(client.get(path).get_data(as_text=True)).values()
    }
    page.add_script_tag(path=str(UNDERSCORE))  # on about:blank: no policy
    for text in templates:
        assert dashboard_guard.compile_template(text) == page.evaluate(
            "text => _.template(text).source", text
        )


@pytest.mark.parametrize(
    "path, headers, status",
    [
        ("/", {}, 200),
        ("/0/view/workers", {}, 200),
        ("/0/data/queues.json", {}, 200),
        ("/static/js/jquery-3.5.1.min.js", {}, 200),
        ("/0/view/nothing", {}, 404),
        ("/", {"Host": "attacker.example"}, 400),
    ],
)
def test_every_response_carries_a_strict_policy(client, path, headers, status):
    response = client.get(path, headers=headers)
    assert response.status_code == status
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in response.headers["Content-Security-Policy"].split("; ")
    }
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"][0] == "'self'"
    assert all(source.startswith("'sha256-") for source in policy["script-src"][1:])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]  # forms post to the dashboard only (its submit form)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def ask(base: str, host: str) -> tuple[int, str]:
    """GET the queues data from the dashboard at `base` (on loopback) with this Host header."""
    address, port = base.removeprefix("http://").rstrip("/").rsplit(":", 1)
    connection = http.client.HTTPConnection(address.strip("[]"), int(port), timeout=30)
    try:
        connection.request("GET", "/0/data/queues.json", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_a_foreign_host_gets_400_and_loopbacks_names_are_answered(dashboard):
    base = dashboard()
    port = base.rstrip("/").rsplit(":", 1)[1]
    status, text = ask(base, f"attacker.example:{port}")
    assert status == 400
    assert "refusing the Host 'attacker.example:" in text and "--allowed-host" in text
    assert ask(base, "127.0.0.1:1")[0] == 400  # another port is another site
    for name in ("127.0.0.1", "localhost", "[::1]"):
        assert ask(base, f"{name}:{port}")[0] == 200


@pytest.mark.parametrize(
    "host, status",
    [("192.0.2.7:9181", 200), ("[2001:db8::1]:9181", 200), ("localhost:9181", 200),
     ("192.0.2.7:80", 400), ("attacker.example:9181", 400)],
)
def test_a_wildcard_bind_answers_its_port_on_any_address_but_no_other_name(
    redis_url, host, status
):
    """An address cannot be rebound: whichever of the machine's the browser used, it meant it."""
    app = thugrq_dashboard.build_app(redis_url, thugrq_dashboard.accepted_hosts("0.0.0.0", 9181))
    response = app.test_client().get("/0/data/queues.json", headers={"Host": host})
    assert response.status_code == status


@pytest.mark.parametrize(
    "args, variable",
    [(("--allowed-host", "a.example", "--allowed-host", "b.example:8443"), ""),
     ((), "a.example, b.example:8443")],
    ids=["option", "variable"],
)
def test_hosts_the_operator_allows_are_answered(dashboard, env, args, variable):
    base = dashboard(*args, environment={**env, "THUGRQ_DASHBOARD_ALLOWED_HOSTS": variable})
    assert ask(base, "a.example:1234")[0] == 200  # a name alone: any port
    assert ask(base, "a.example")[0] == 200
    assert ask(base, "b.example:8443")[0] == 200
    assert ask(base, "b.example:8444")[0] == 400


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN},
        {"Origin": "null"},
        {"Origin": "http://localhost:8080"},
        {"Referer": f"{FOREIGN}/"},
        {},
    ],
    ids=["foreign-origin", "null-origin", "other-port", "foreign-referer", "neither"],
)
def test_a_post_that_is_not_from_the_dashboards_pages_is_refused(client, queued, headers):
    response = client.post("/queue/generic/queued/empty", headers=headers)
    assert response.status_code == 403
    assert "refusing a change" in response.get_data(as_text=True)
    assert queued.count == 2


@pytest.mark.parametrize(
    "headers", [{"Origin": "http://localhost"}, {"Referer": "http://localhost/0/view/jobs"}]
)
def test_a_post_from_the_dashboards_pages_is_done(client, queued, headers):
    assert client.post("/queue/generic/queued/empty", headers=headers).status_code == 200
    assert queued.count == 0


def state_changing_paths(app) -> Iterator[str]:
    """rq-dashboard's routes that take POST, with `generic` for each argument."""
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods:
            yield rule.build({argument: "generic" for argument in rule.arguments})[1]


def test_no_state_changing_route_answers_get(app, client):
    paths = list(state_changing_paths(app))
    assert "/requeue/generic" in paths  # rq-dashboard's own takes GET as well
    for path in paths:
        for method in ("GET", "HEAD"):
            response = client.open(path, method=method, headers={"Origin": "http://localhost"})
            assert (path, method, response.status_code) == (path, method, 405)


def test_get_does_not_requeue_failed_jobs(client, connection):
    job = add_job(connection)
    registry = FailedJobRegistry(queue=generic(connection))
    registry.add(job, ttl=600, exc_string="failed")
    client.get("/requeue/generic", headers={"Referer": "http://localhost/0/view/jobs"})
    assert registry.get_job_ids() == [job.id]
