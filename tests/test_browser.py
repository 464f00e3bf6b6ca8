"""The dashboard as an analyst sees it: rq-dashboard's pages in headless Chromium.

Debian's `chromium`, driven by Playwright with `executable_path` (Playwright's own browser
downloads are never used). The browser may only reach 127.0.0.1 and [::1]: anything else is
aborted and fails the test. A failing test leaves a screenshot of its page in its tmp_path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips, saying why
    expect = None

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # No internet here: keep Chromium from calling home (refused connections by the hundred).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
]
LOOPBACK = {"127.0.0.1", "::1", "[::1]"}
TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def workers_may_analyse_the_test_site_only(env):
    """The test site is on 127.0.0.1, which workers refuse unless allowed: these workers may
    reach it and no other private address (`env` alone allows them all)."""
    env["THUGRQ_ALLOW_PRIVATE_TARGETS"] = "127.0.0.1/32"


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # Skips here, not at import, so that THUGRQ_REQUIRE_ALL=1 turns them into failures.
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install '.[test]'")
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (bin/test does, as root)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request, tmp_path: Path) -> Iterator:
    """A fresh page; only loopback addresses reachable; a screenshot in tmp_path on failure."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    blocked: list[str] = []

    def only_loopback(route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    opened = context.new_page()
    yield opened
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        shot = tmp_path / "screenshot.png"
        opened.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of {opened.url}: {shot}")
    context.close()
    assert not blocked, f"the page tried to reach beyond loopback: {blocked}"


def queue_row(page, name: str):
    return page.locator("table#queues tr[data-role=queue]").filter(
        has=page.locator("td:first-child", has_text=name)
    )


def test_queues_page_lists_generic_and_a_country_with_their_counts(page, thugrq, dashboard):
    thugrq("enqueue", "http://a.test/", "http://b.test/", check=True)
    thugrq("enqueue", "http://a.test/", "--country", "Italy", check=True)
    page.goto(dashboard() + "0/view/queues")
    generic, italy = queue_row(page, "generic"), queue_row(page, "IT")
    expect(generic).to_have_count(1)
    expect(italy).to_have_count(1)
    # Columns: queue, queued, deferred, scheduled, started, finished, failed, canceled.
    expect(generic.locator("td").nth(1)).to_have_text("2")
    expect(italy.locator("td").nth(1)).to_have_text("1")


def test_workers_page_lists_a_busy_worker_with_its_queues(page, busy_worker, dashboard):
    page.goto(dashboard() + "0/view/workers")
    row = page.locator("table#workers tr[data-role=worker]")
    expect(row).to_have_count(1)
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text(busy_worker.name)
    expect(cells.nth(1)).to_contain_text("thugrq.analysis.analyze(")
    expect(cells.nth(1).locator("a")).to_have_attribute(
        "href", f"/0/view/job/{busy_worker.job_id}"
    )
    expect(cells.nth(2)).to_have_text("IT, generic")


def test_job_page_of_a_finished_analysis_shows_its_result(
    page, thugrq, burst_worker, site, dashboard
):
    job_id = thugrq("enqueue", site.url("/activex"), "--country", "IT", check=True).stdout.strip()
    burst_worker("--country", "IT")
    page.goto(dashboard() + f"0/view/job/{job_id}")
    data = page.locator("#job-data")
    expect(data).to_contain_text(f"thug {site.url('/activex')} as winxpie60 from IT")
    expect(data).to_contain_text("finished")
    result = data.locator("pre").first
    expect(result).to_contain_text('"schema": "thugrq.result/1"')
    expect(result).to_contain_text('"status": "completed"')
    expect(result).to_contain_text("WScript.Shell")


def test_job_page_shows_an_analysed_pages_markup_as_text_without_running_it(
    page, thugrq, burst_worker, site, dashboard
):
    job_id = thugrq("enqueue", site.url("/hostile"), check=True).stdout.strip()
    burst_worker()
    page.goto(dashboard() + f"0/view/job/{job_id}")
    result = page.locator("#job-data pre").first
    expect(result).to_contain_text("<img src=/hostile.png onerror=window.pwned=1>")
    assert page.locator("#job-data img").count() == 0
    assert page.evaluate("window.pwned") is None

