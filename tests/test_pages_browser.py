"""thugrq's analyst pages (thugrq.pages) as an analyst sees them: headless Chromium on real results.

The browser set-up is tests/test_browser.py's (Debian's chromium through Playwright, loopback
only). Each page is also saved as a screenshot under the session's temporary directory
(`screenshots/`, printed at the end of each test), so a person can look at what the tests saw.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_browser import browser, expect, page, workers_may_analyse_the_test_site_only  # noqa: F401

FOLD = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "screenshots"


def keep(page, screenshots: Path, name: str) -> None:  # noqa: F811 - the fixture's page
    screenshots.mkdir(exist_ok=True)
    shot = screenshots / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot of {page.url}: {shot}")


def analysed(thugrq, burst_worker, *args: str) -> str:
    """The id of one job enqueued with `args`, once a burst worker has analysed it."""
    job_id = thugrq("enqueue", *args, check=True).stdout.split()[0]
    burst_worker()
    return job_id


def test_the_analysis_page_shows_its_verdict_card_above_the_fold(
    page, thugrq, burst_worker, site, dashboard, screenshots  # noqa: F811
):
    job_id = analysed(thugrq, burst_worker, site.url("/chain/start"))
    page.set_viewport_size(FOLD)
    page.goto(dashboard() + f"thugrq/job/{job_id}")
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("completed")
    expect(verdict).to_contain_text(site.url("/chain/final"))
    box = verdict.bounding_box()
    assert box is not None and box["y"] + box["height"] <= FOLD["height"], box
    expect(page.locator("svg#redirects")).to_contain_text("/chain/meta")
    keep(page, screenshots, "analysis")


def test_the_analysis_page_of_a_hostile_page_runs_nothing_of_it(
    page, thugrq, burst_worker, site, dashboard, screenshots  # noqa: F811
):
    job_id = analysed(thugrq, burst_worker, site.url("/hostile-all"))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(dashboard() + f"thugrq/job/{job_id}")
    for details in page.locator("details").all():
        details.evaluate("element => element.open = true")
    expect(page.locator("body")).to_contain_text("onerror=window.pwned=1")
    expect(page.locator("body")).to_contain_text("<script>window.pwned=3</script>")
    links = [link.get_attribute("href") or "" for link in page.locator("a").all()]
    assert not [href for href in links if href.strip().lower().startswith("javascript:")], links
    assert page.locator("img[onerror]").count() == 0
    assert page.evaluate("window.pwned") is None
    keep(page, screenshots, "analysis-hostile")


def test_the_group_page_highlights_the_personality_that_was_shown_another_page(
    page, thugrq, burst_worker, site, dashboard, screenshots  # noqa: F811
):
    enqueued = thugrq(
        "enqueue", site.url("/cloak"), "--useragent", "winxpie60", "--useragent", "win7chrome49",
        "--json", check=True,
    )
    group = re.search(r'"group": "([^"]+)"', enqueued.stdout) or re.search(
        r"group (\S+)", enqueued.stderr
    )
    assert group, enqueued.stdout + enqueued.stderr
    burst_worker()
    page.goto(dashboard() + f"thugrq/group/{group.group(1)}")
    matrix = page.locator("table#matrix")
    expect(matrix).to_contain_text("winxpie60")
    expect(matrix).to_contain_text("win7chrome49")
    expect(matrix.locator(".differs")).not_to_have_count(0)
    keep(page, screenshots, "group")


def test_the_fleet_page_shows_a_live_worker_and_flags_a_country_nobody_serves(
    page, thugrq, busy_worker, dashboard, screenshots  # noqa: F811
):
    thugrq("enqueue", "http://waiting.test/", "--country", "FR", check=True)
    page.goto(dashboard() + "thugrq/fleet")
    fleet = page.locator("table#fleet")
    expect(fleet).to_contain_text(busy_worker.name)
    expect(fleet.locator(".unserved")).to_contain_text("FR")
    keep(page, screenshots, "fleet")
