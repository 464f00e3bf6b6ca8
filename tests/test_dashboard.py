"""`thugrq dashboard`: rq-dashboard on thugrq's Redis, JSON jobs, loopback unless protected."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
import rq
import rq_dashboard.web

from thugrq import dashboard as thugrq_dashboard

# Straight to 127.0.0.1, whatever proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(autouse=True)
def workers_may_analyse_the_test_site_only(env):
    """The test site is on 127.0.0.1, which workers refuse unless allowed: these workers may
    reach it and no other private address (`env` alone allows them all)."""
    env["THUGRQ_ALLOW_PRIVATE_TARGETS"] = "127.0.0.1/32"


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_workers_json_shows_a_busy_worker_with_its_queues_and_job(dashboard, busy_worker):
    base = dashboard()
    status, body = get(base + "0/data/workers.json")
    assert status == 200, body[-2000:]
    (worker,) = json.loads(body)["workers"]
    assert worker["name"] == busy_worker.name
    assert worker["queues"] == ["IT", "generic"]
    assert worker["state"] == "busy"
    assert worker["current_job"]["job_id"] == busy_worker.job_id
    assert worker["current_job"]["description"].startswith("thug http://127.0.0.1:")
    assert "thugrq.analysis.analyze(" in worker["current_job"]["call_string"]


def test_workers_page_answers_200_while_a_worker_is_busy(dashboard, busy_worker):
    status, body = get(dashboard() + "0/view/workers")
    assert status == 200
    assert b"Workers" in body


@pytest.fixture
def app(redis_url):
    """The dashboard app itself, for Flask's test client (Host: localhost)."""
    return thugrq_dashboard.build_app(
        redis_url, thugrq_dashboard.accepted_hosts(thugrq_dashboard.DEFAULT_BIND, 80)
    )


def test_rq_dashboards_own_worker_lookup_answers_500_with_a_busy_worker(
    app, busy_worker, monkeypatch
):
    """Why `DashboardWorker` exists. When this fails, rq-dashboard reads a busy JSON worker
    by itself: the adapter may then go."""
    monkeypatch.setattr(rq_dashboard.web, "Worker", rq.Worker)
    assert app.test_client().get("/0/data/workers.json").status_code == 500


def test_the_dashboards_worker_lookup_reads_a_busy_workers_json_job(app, busy_worker):
    assert rq_dashboard.web.Worker is thugrq_dashboard.DashboardWorker
    response = app.test_client().get("/0/data/workers.json")
    assert response.status_code == 200
    assert response.get_json()["workers"][0]["current_job"]["job_id"] == busy_worker.job_id


def test_finished_job_data_holds_its_result_document(thugrq, burst_worker, site, dashboard):
    job_id = thugrq("enqueue", site.url("/activex"), check=True).stdout.strip()
    burst_worker()
    status, body = get(dashboard() + f"0/data/job/{job_id}.json")
    assert status == 200
    job = json.loads(body)
    assert job["status"] == "finished"
    assert job["description"] == f"thug {site.url('/activex')} as winxpie60 from generic"
    assert job["result"]["schema"] == "thugrq.result/1"
    assert job["result"]["summary"]["exploits"]
    keys = list(job["result"])  # in the document's order: what an analyst reads first, first
    assert keys[:2] == ["schema", "url"] and keys.index("summary") < keys.index("log")


def test_job_data_is_html_escaped_so_page_markup_cannot_run(thugrq, burst_worker, site, app):
    job_id = thugrq("enqueue", site.url("/hostile"), check=True).stdout.strip()
    burst_worker()
    body = app.test_client().get(f"/0/data/job/{job_id}.json").get_data(as_text=True)
    assert "onerror" in body  # the page's markup is in the result, as text
    assert "<img" not in body and "&lt;img" in body


def test_a_request_without_credentials_gets_401(dashboard):
    base = dashboard("--bind", "0.0.0.0", "--username", "analyst", "--password", "s3cret")
    status, _ = get(base + "0/view/queues")
    assert status == 401
    assert get(base + "0/data/queues.json", auth=("analyst", "wrong"))[0] == 401
    assert get(base + "static/js/jquery-3.5.1.min.js")[0] == 401


def test_a_request_with_the_credentials_gets_the_dashboard(dashboard):
    base = dashboard("--username", "analyst", "--password", "s3cret")
    status, body = get(base + "0/data/queues.json", auth=("analyst", "s3cret"))
    assert status == 200
    assert json.loads(body) == {"queues": []}


def test_credentials_can_come_from_the_environment(dashboard, env):
    environment = {**env, "THUGRQ_DASHBOARD_USERNAME": "a", "THUGRQ_DASHBOARD_PASSWORD": "b"}
    base = dashboard(environment=environment)
    assert get(base + "0/data/queues.json")[0] == 401
    assert get(base + "0/data/queues.json", auth=("a", "b"))[0] == 200


def test_a_port_in_use_is_a_one_line_error(thugrq, dashboard):
    port = dashboard().rsplit(":", 1)[1].strip("/")
    refused = thugrq("dashboard", "--port", port)
    assert refused.returncode != 0
    expected = f"Error: cannot listen on 127.0.0.1 port {port}: the port is in use"
    assert refused.stderr.strip() == expected


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.0.2.1", False)],
)
def test_loopback_addresses_are_told_apart(host, loopback):
    assert thugrq_dashboard.is_loopback(host) is loopback


def test_the_dashboard_listens_on_ipv6_loopback(dashboard):
    base = dashboard("--bind", "::1")
    assert base.startswith("http://[::1]:")
    assert get(base + "0/data/queues.json")[0] == 200
