"""The dashboard's submit form (thugrq.submit_form): served only with credentials, checked by
the code `thugrq enqueue` uses, enqueued as one group that the analyst lands on, and refused
(403) without this session's token or from another site's page.

Through Flask's test client on the private Redis; one case in headless Chromium on a real
`thugrq dashboard`, under the dashboard's real Content-Security-Policy and Referrer-Policy.
"""

from __future__ import annotations

import base64
import re

import pytest
from markupsafe import escape
from rq.serializers import JSONSerializer

from tests.test_browser import TIMEOUT_MS, browser, expect  # noqa: F401 - shared fixtures
from tests.test_pages_browser import keep, screenshots  # noqa: F401 - shared fixture
from tests.test_dashboard import app  # noqa: F401 - shared fixture (no credentials)
from thugrq import dashboard as thugrq_dashboard
from thugrq import groups, submit_form
from thugrq.job import ThugrqJob
from thugrq.personalities import DEFAULT_PERSONALITY

USER, PASSWORD = "analyst", "s3cret"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
OWN = {**AUTH, "Origin": "http://localhost"}
FORM = {"urls": "http://a.test/\nhttp://b.test/"}


def build(redis_url: str):
    """The dashboard app with credentials, as `thugrq dashboard --username --password` makes it
    (for Flask's test client: Host localhost)."""
    hosts = thugrq_dashboard.accepted_hosts(thugrq_dashboard.DEFAULT_BIND, 80)
    return thugrq_dashboard.build_app(redis_url, hosts, USER, PASSWORD)


@pytest.fixture
def guarded(redis_url):
    return build(redis_url)


@pytest.fixture
def client(guarded):
    return guarded.test_client()


def fetch(connection, job_id: str) -> ThugrqJob:
    return ThugrqJob.fetch(job_id, connection=connection, serializer=JSONSerializer)


def form_token(client) -> str:
    """Load the form as an analyst does (its cookie kept by the client); its token."""
    shown = client.get(submit_form.PATH, headers=AUTH)
    assert shown.status_code == 200, shown.get_data(as_text=True)
    return re.search(r'name="token" value="([0-9a-f]{64})"', shown.get_data(as_text=True))[1]


def post(client, fields: dict, token: str | None = None, headers: dict | None = None):
    data = {**fields, **({"token": token} if token is not None else {})}
    return client.post(submit_form.PATH, data=data, headers=headers or OWN)


def test_the_pages_navigation_links_to_the_form(client):
    fleet = client.get("/thugrq/fleet", headers=AUTH)
    assert fleet.status_code == 200
    assert '<a href="/thugrq/submit">Submit</a>' in fleet.get_data(as_text=True)


def test_the_form_is_shown_with_credentials(client):
    shown = client.get(submit_form.PATH, headers=AUTH)
    assert shown.status_code == 200
    page = shown.get_data(as_text=True)
    for control in ('name="urls"', 'name="countries"', 'name="generic"', 'name="useragent"',
                    'name="timeout"', 'name="referer"', 'name="threshold"', 'name="extensive"'):
        assert control in page
    assert '<option value="win7ie90"' in page
    assert '<a href="/thugrq/submit">Submit</a>' in page  # in the pages' navigation
    assert '<form id="submit-form" method="post" action="/thugrq/submit">' in page
    assert "<script" not in page and "<style" not in page  # the policy allows neither
    policy = shown.headers["Content-Security-Policy"]
    assert "form-action 'self'" in policy and "default-src 'none'" in policy
    # Under no-referrer the browser would POST with `Origin: null` (refused); same-origin
    # gives the dashboard its own origin and other sites nothing.
    assert shown.headers["Referrer-Policy"] == "same-origin"
    cookie = shown.headers["Set-Cookie"]
    assert cookie.startswith(f"{submit_form.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/thugrq/submit" in cookie


def test_without_credentials_there_is_no_form(app, connection):
    """A dashboard anyone on the machine may use exposes nothing that queues work."""
    client = app.test_client()
    assert client.get(submit_form.PATH).status_code == 404
    refused = client.post(submit_form.PATH, data=FORM, headers={"Origin": "http://localhost"})
    assert refused.status_code == 404
    assert not any(rule.rule == submit_form.PATH for rule in app.url_map.iter_rules())
    assert submit_form.EXTENSION not in app.extensions
    fleet = client.get("/thugrq/fleet")
    assert fleet.status_code == 200 and "/thugrq/submit" not in fleet.get_data(as_text=True)
    assert connection.dbsize() == 0


@pytest.mark.parametrize("method", ["get", "post"])
def test_without_the_credentials_the_form_answers_401(client, connection, method):
    answered = getattr(client, method)(submit_form.PATH, headers={"Origin": "http://localhost"})
    assert answered.status_code == 401
    assert connection.dbsize() == 0


def test_a_valid_submission_enqueues_one_group_and_lands_on_its_page(client, connection):
    fields = {
        "urls": "http://a.test/\n\n# a comment\nhttp://b.test/page\n",
        "countries": "it, Germany", "generic": "on", "useragent": ["win7ie90", "winxpie60"],
        "timeout": "30", "referer": "http://referer.test/", "threshold": "5", "extensive": "on",
        "events": "click, mouseover", "delay": "",
    }
    landed = post(client, fields, form_token(client))
    assert landed.status_code == 303, landed.get_data(as_text=True)
    group = re.fullmatch(r"/thugrq/group/([0-9a-f]{32})", landed.headers["Location"])[1]
    ids = groups.members(connection, group)
    assert len(ids) == 2 * 3 * 2  # URLs x queues x personalities
    jobs = [fetch(connection, job_id) for job_id in ids]
    seen = {(job.args[0], job.origin, job.args[1]["useragent"]) for job in jobs}
    assert seen == {
        (url, queue, ua) for url in ("http://a.test/", "http://b.test/page")
        for queue in ("IT", "DE", "generic") for ua in ("win7ie90", "winxpie60")
    }
    options = jobs[0].args[1]
    assert (options["timeout"], options["referer"], options["threshold"]) == (
        30, "http://referer.test/", 5
    )
    assert options["extensive"] is True and options["events"] == ["click", "mouseover"]
    assert options["delay"] is None and options["web_tracking"] is False
    assert {fetch(connection, i).group_id for i in ids} == {group}


def test_no_country_and_no_personality_is_generic_as_the_default_personality(client, connection):
    landed = post(client, {"urls": "http://a.test/"}, form_token(client))
    assert landed.status_code == 303
    (job_id,) = groups.members(connection, landed.headers["Location"].rsplit("/", 1)[1])
    job = fetch(connection, job_id)
    assert (job.origin, job.args[1]["useragent"]) == ("generic", DEFAULT_PERSONALITY)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"urls": "http://a.test/\nnot-a-url"}, "URLs line 2: invalid URL 'not-a-url'"),
        ({"urls": "ftp://x.test/"}, "give a full http:// or https:// URL"),
        ({"urls": "  \n"}, "no URL given"),
        ({**FORM, "countries": "IT, Narnia"}, "unknown country 'Narnia'"),
        ({**FORM, "useragent": ["win7ie90", "nosuchua"]}, "invalid useragent 'nosuchua'"),
        ({**FORM, "timeout": "0"}, "invalid timeout 0: give a whole number from 1 to"),
        ({**FORM, "timeout": "soon"}, "invalid timeout 'soon': give a whole number from 1 to"),
        ({**FORM, "referer": "javascript:alert(1)"}, "invalid referer 'javascript:alert(1)'"),
        ({**FORM, "events": "click,<script>"}, "invalid events"),
        ({**FORM, "threshold": "-3"}, "invalid threshold -3"),
    ],
)
def test_invalid_input_is_shown_with_the_form_and_nothing_is_enqueued(
    client, connection, fields, message
):
    refused = post(client, fields, form_token(client))
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert '<p id="message" class="message error" role="alert">' in page
    assert str(escape(message)) in page
    assert str(escape(fields["urls"])) in page  # the input is kept for correcting
    assert connection.dbsize() == 0


def test_a_hostile_value_in_a_refusal_shows_as_text(client, connection):
    refused = post(client, {"urls": "javascript:<img/src=x/onerror=alert(1)>"}, form_token(client))
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert "<img" not in page and "&lt;img/src=x/onerror=alert(1)&gt;" in page
    assert connection.dbsize() == 0


def test_a_post_without_the_sessions_token_is_refused(client, guarded, connection, redis_url):
    token = form_token(client)
    for given in (None, "", "0" * 64, token[:-1] + ("0" if token[-1] != "0" else "1")):
        refused = post(client, FORM, given)
        assert refused.status_code == 403, given
        assert "form token" in refused.get_data(as_text=True)
    other = guarded.test_client()  # another session: its own cookie, its own token
    assert post(other, FORM, token).status_code == 403
    assert post(client, FORM, form_token(other)).status_code == 403
    # This session's id under another run's secret (each start of the dashboard makes one).
    session = client.get_cookie(submit_form.COOKIE, path=submit_form.PATH).value
    with guarded.app_context():
        assert submit_form.token(session) == token
    with build(redis_url).app_context():
        assert post(client, FORM, submit_form.token(session)).status_code == 403
    assert connection.dbsize() == 0


def test_a_post_without_the_forms_cookie_is_refused(client, guarded, connection):
    token = form_token(client)
    cookieless = guarded.test_client()
    assert post(cookieless, FORM, token).status_code == 403
    assert connection.dbsize() == 0


@pytest.mark.parametrize(
    "headers", [{"Origin": "http://attacker.example"}, {"Referer": "http://attacker.example/"}, {}],
    ids=["foreign-origin", "foreign-referer", "neither"],
)
def test_a_post_from_another_sites_page_is_refused_even_with_the_token(
    client, connection, headers
):
    refused = post(client, FORM, form_token(client), headers={**AUTH, **headers})
    assert refused.status_code == 403
    assert "refusing a change" in refused.get_data(as_text=True)
    assert connection.dbsize() == 0


def test_an_unreachable_redis_is_said_and_nothing_is_enqueued(redis_url):
    client = build("redis://127.0.0.1:1/0").test_client()
    refused = post(client, FORM, form_token(client))
    assert refused.status_code == 503
    assert "nothing was enqueued: cannot reach Redis" in refused.get_data(as_text=True)


def test_the_form_submits_in_chromium_and_lands_on_the_group_page(
    browser, dashboard, env, connection, screenshots
):
    """Under the dashboard's own headers (CSP form-action 'self', Referrer-Policy no-referrer),
    a real browser's POST passes the Origin check and the token's."""
    base = dashboard(
        environment={**env, "THUGRQ_DASHBOARD_USERNAME": USER, "THUGRQ_DASHBOARD_PASSWORD": PASSWORD}
    )
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(base + "thugrq/submit")
        page.fill("#urls", "http://a.test/\nhttp://b.test/")
        page.fill("#countries", "IT")
        page.select_option("#useragent", ["win7ie90"])
        page.fill("#option-timeout", "45")
        keep(page, screenshots, "submit-form")
        page.click("#submit")
        page.wait_for_url(re.compile(r".*/thugrq/group/[0-9a-f]{32}$"))
        group = page.url.rsplit("/", 1)[1]
        jobs = [fetch(connection, i) for i in groups.members(connection, group)]
        assert sorted((job.args[0], job.origin) for job in jobs) == [
            ("http://a.test/", "IT"), ("http://b.test/", "IT")
        ]
        assert {job.args[1]["timeout"] for job in jobs} == {45}
    finally:
        context.close()
