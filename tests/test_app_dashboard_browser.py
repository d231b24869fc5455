"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against the real
server, in zh-CN: an admin adds a team lead through the users page; the team lead filters
the dashboard, clicks a tile and lands on a queue of that many calls (their team's only),
switches the interface to English and downloads the CSV of the figures shown. Also: no
horizontal scrolling at 1366x768 or at a phone's width, and no CSP violation."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest

from tests.builders import PASSWORD, open_zh

SCREENSHOT_DIR = os.environ.get("CALLQA_SCREENSHOTS")  # set to keep screenshots of the page
pytestmark = pytest.mark.slow  # a real browser: seconds per test
LEAD_CALLS = {"c-a1-1", "c-a1-2"}  # team T1


def queue_total(page) -> int:
    return int(re.sub(r"\D", "", page.get_by_test_id("queue-total").inner_text()))


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_team_lead_dashboard_in_chinese(live_app: str, browser) -> None:
    admin = open_zh(browser, live_app, "admin", 1366, 768)
    admin.goto(f"{live_app}/users")
    form = admin.locator('form[action="/users"]')
    form.locator('input[name="username"]').fill("lead1")
    form.locator('input[name="password"]').fill(PASSWORD)
    form.locator('select[name="role"]').select_option("team_lead")
    form.locator('input[name="teams"]').fill("T1")
    form.locator("button").click()
    admin.wait_for_url(f"{live_app}/users")
    assert "lead1" in admin.get_by_test_id("user-row").all_inner_texts().__str__()
    admin.context.close()

    page = open_zh(browser, live_app, "lead1", 1366, 768)
    page.get_by_test_id("nav-dashboard").click()
    page.wait_for_url(f"{live_app}/dashboard")
    assert page.evaluate("document.documentElement.lang").startswith("zh")
    assert page.locator("h1").first.inner_text() == "仪表盘"
    assert "平均分" in page.get_by_test_id("tiles").inner_text()

    # filter: the whole of November, high risk only; the filters go into the URL
    page.fill('input[name="date_from"]', "2026-11-01")
    page.fill('input[name="date_to"]', "2026-11-30")
    page.get_by_test_id("dash-apply").click()
    page.wait_for_url(re.compile(r"/dashboard\?date_from=2026-11-01&date_to=2026-11-30"))
    calls = page.get_by_test_id("tile-link-calls")
    assert int(calls.get_attribute("data-count")) == len(LEAD_CALLS)
    page.locator('select[name="risk_level"]').select_option("high")
    page.get_by_test_id("dash-apply").click()
    page.wait_for_url(re.compile(r"risk_level=high"))
    assert int(page.get_by_test_id("tile-link-calls").get_attribute("data-count")) == 1
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 768 if width > 400 else 844})
        assert no_sideways_scroll(page), f"sideways scrolling at {width} px"
        if SCREENSHOT_DIR:
            page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"dashboard_{width}.png"), full_page=True)  # fmt: skip
    page.set_viewport_size({"width": 1366, "height": 768})

    # click a tile: the queue of exactly that many calls, all of the lead's team
    page.get_by_test_id("tile-link-high_risk").click()
    page.wait_for_url(re.compile(r"/\?.*risk_level=high"))
    assert queue_total(page) == 1
    rows = page.get_by_test_id("call-row")
    assert {rows.nth(i).get_attribute("data-call-id") for i in range(rows.count())} <= LEAD_CALLS
    page.go_back()
    page.wait_for_url(re.compile(r"/dashboard\?"))
    link = page.get_by_test_id("tile-link-calls")
    shown = int(link.get_attribute("data-count"))
    link.click()
    page.wait_for_url(re.compile(r"/\?"))
    assert queue_total(page) == shown

    # switch the interface to English; the dashboard follows
    page.goto(f"{live_app}/account")
    page.get_by_test_id("language-form").locator('select[name="language"]').select_option("en")
    page.get_by_test_id("language-form").locator("button").click()
    page.goto(f"{live_app}/dashboard?date_from=2026-11-01&date_to=2026-11-30")
    assert page.evaluate("document.documentElement.lang").startswith("en")
    assert page.locator("h1").first.inner_text() == "Dashboard"
    assert "Mean score" in page.get_by_test_id("tiles").inner_text()

    # download the CSV of the agents shown: the same calls as the ranking
    with page.expect_download() as info:
        page.get_by_test_id("export-csv-agents").click()
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["agent_id"], int(r["calls"])) for r in rows] == [("A1", 2)]
    ranked = page.get_by_test_id("agent-calls")
    assert [int(ranked.nth(i).get_attribute("data-count")) for i in range(ranked.count())] == [2]
    assert page.csp_errors == []
    page.context.close()


@pytest.fixture(scope="module")
def reviewed_app(tmp_path_factory):
    """The live app over the builders' store with a manager, a team lead of T1, an
    overturned item on c-a1-2 (so the overturn tile has calls) and an open dispute."""
    from pipeline.app import create_app
    from pipeline.app.permissions import scope_of
    from pipeline.store import dispose_engines
    from tests.builders import build_store, live_server

    root = tmp_path_factory.mktemp("reviewed")
    app = create_app(build_store(root), var_dir=root / "var", secret_key="test-only-key")
    reviews = app.state.reviews
    reviews.add_user("mgr", PASSWORD, "manager")
    reviews.add_user("lead1", PASSWORD, "team_lead", teams=["T1"])
    admin, agent2 = (reviews.authenticate(n, PASSWORD) for n in ("admin", "agent2"))

    def item(call_id: str, item_id: str) -> int:
        return next(i.item_result_id for i in reviews.final_score(scope_of(admin), call_id).items if i.id == item_id)  # fmt: skip

    reviews.override(scope_of(admin), "c-a1-2", item("c-a1-2", "apology"), True, "said sorry")
    reviews.dispute(scope_of(agent2), "c-a2-1", item("c-a2-1", "no_forbidden"), "misheard")
    with live_server(app) as url:
        yield url
    dispose_engines()


@pytest.mark.parametrize("who", ["mgr", "lead1"])
def test_every_tile_and_chart_point_opens_that_many_calls(reviewed_app: str, browser, who: str) -> None:  # fmt: skip
    """In zh-CN: every counted link of the dashboard (tiles, the overturn tile's reviewed
    calls with an overturn, both charts' points, item fails, rankings) opens a queue whose
    count is the number it carries; clicking the overturn tile's link and a chart point
    lands on the same count."""
    base = reviewed_app
    page = open_zh(browser, base, who, 1366, 768)
    dash = f"{base}/dashboard?date_from=2026-11-01&date_to=2026-11-30"
    page.goto(dash)
    links = page.locator("a[data-count]")
    found = [
        (
            links.nth(i).get_attribute("data-testid") or "",
            links.nth(i).get_attribute("href"),
            int(links.nth(i).get_attribute("data-count")),
        )  # fmt: skip
        for i in range(links.count())
    ]
    kinds = {t for t, _h, _n in found}
    assert {"tile-link-calls", "tile-link-overturn", "tile-link-overturn-calls", "chart-score-point", "chart-risk-point"} <= kinds  # fmt: skip
    points = [n for t, _h, n in found if t == "chart-score-point"]
    assert sum(points) == int(page.get_by_test_id("tile-link-calls").get_attribute("data-count"))
    for testid, href, shown in found:
        page.goto(base + href)
        assert queue_total(page) == shown, (testid, href)

    # real clicks: the overturned calls, then the first day of the risk chart
    page.goto(dash)
    page.get_by_test_id("tile-link-overturn-calls").click()
    page.wait_for_url(re.compile(r"/\?.*overturned=1"))
    assert queue_total(page) == 1
    assert page.get_by_test_id("call-row").first.get_attribute("data-call-id") == "c-a1-2"
    assert page.locator('select[name="overturned"]').input_value() == "1"  # the filter is shown
    page.go_back()
    page.wait_for_url(re.compile(r"/dashboard\?"))
    point = page.get_by_test_id("chart-risk-point").first
    shown = int(point.get_attribute("data-count"))
    point.click()
    page.wait_for_url(re.compile(r"/\?.*date_from=2026-11-01&date_to=2026-11-01"))
    assert queue_total(page) == shown == 1
    assert page.csp_errors == []
    page.context.close()
