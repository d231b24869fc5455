"""The review app in a real headless Chromium (Debian's, driven by Playwright) against the
real server (uvicorn on a free local port): login, queue, seek by utterance, range request,
override with audit, a dispute and its ruling, and agent isolation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.builders import OWN, PASSWORD, UTT_STARTS, open_zh, signed_in_page

SCREENSHOT_DIR = os.environ.get("CALLQA_SCREENSHOTS")  # set to keep a screenshot of the page
# A real browser: seconds per test, and playback-timing assertions that a loaded machine upsets.
pytestmark = pytest.mark.slow


def login(browser, base: str, name: str):
    return signed_in_page(browser, base, name)


def total(page) -> float:
    return float(page.get_by_test_id("total-score").inner_text())


def test_reviewer_works_a_call(live_app: str, browser) -> None:
    page = login(browser, live_app, "rev")
    rows = page.get_by_test_id("call-row")
    assert rows.count() == 4
    page.click(f'[data-testid="call-row"][data-call-id="{OWN}"] a')
    page.wait_for_url(re.compile(rf"/calls/{OWN}\?"))

    # clicking the third utterance seeks the player to its start
    player = page.get_by_test_id("audio-player")
    page.get_by_test_id("utterance").nth(2).click()
    page.wait_for_function(
        "t => Math.abs(document.querySelector('[data-testid=audio-player]').currentTime - t) < 0.6",
        arg=UTT_STARTS[2],
    )
    assert abs(player.evaluate("a => a.currentTime") - UTT_STARTS[2]) < 0.6
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "call_page.png"), full_page=True)

    # the audio URL answers a range request with 206 (same session cookie)
    src = player.get_attribute("src")
    resp = page.request.get(f"{live_app}{src}", headers={"Range": "bytes=0-1023"})
    assert resp.status == 206
    assert resp.headers["content-range"].startswith("bytes 0-1023/")
    assert len(resp.body()) == 1024

    # one click on an item's override flips it: total changes, an audit row appears
    before = total(page)
    assert page.get_by_test_id("audit-row").count() == 0
    page.locator('[data-testid="item"][data-item-id="apology"] [data-testid="item-pass"]').click()  # fmt: skip
    page.wait_for_selector('[data-testid="audit-row"]')
    assert total(page) != before
    assert page.get_by_test_id("audit-row").count() == 1
    assert page.get_by_test_id("review-status").get_attribute("data-status") == "reviewed"
    page.context.close()


def test_dispute_and_ruling(live_app: str, browser) -> None:
    call = "c-a1-2"
    agent = login(browser, live_app, "agent1")
    agent.goto(f"{live_app}/calls/{call}")
    item = agent.locator('[data-testid="item"][data-item-id="apology"]')
    item.get_by_test_id("dispute-reason").fill("I apologised at 8.5 s")
    item.get_by_test_id("item-dispute").click()
    agent.wait_for_selector('[data-testid="dispute"][data-status="open"]')
    machine_total = total(agent)

    reviewer = login(browser, live_app, "rev")
    reviewer.goto(f"{live_app}/calls/{call}")
    assert reviewer.get_by_test_id("review-status").get_attribute("data-status") == "disputed"
    reviewer.get_by_test_id("ruling-comment").fill("heard the apology")
    reviewer.get_by_test_id("dispute-uphold").click()
    reviewer.wait_for_selector('[data-testid="dispute"][data-status="upheld"]')
    assert total(reviewer) > machine_total

    agent.reload()
    assert agent.get_by_test_id("dispute-status").get_attribute("data-status") == "upheld"
    assert "heard the apology" in agent.content()
    assert total(agent) == total(reviewer)
    agent.context.close()
    reviewer.context.close()


def test_agent_sees_only_their_calls(live_app: str, browser) -> None:
    page = login(browser, live_app, "agent1")
    rows = page.get_by_test_id("call-row")
    assert rows.count() == 2
    assert sorted(rows.nth(i).get_attribute("data-call-id") for i in range(2)) == ["c-a1-1", "c-a1-2"]  # fmt: skip
    response = page.goto(f"{live_app}/calls/c-a2-1")
    assert response.status in (403, 404)
    audio = page.request.get(f"{live_app}/calls/c-a2-1/audio", headers={"Range": "bytes=0-99"})
    assert audio.status in (403, 404)
    page.context.close()


# --------------------------------------------------------------------------- zh-CN reviewer


def test_chinese_interface(live_app: str, browser) -> None:
    page = open_zh(browser, live_app, "rev")
    assert page.evaluate("document.documentElement.lang").startswith("zh")
    nav = page.get_by_test_id("nav").inner_text()
    assert "质检队列" in nav and "搜索" in nav and "校准" in nav
    assert "共 4 通" in page.get_by_test_id("queue-total").inner_text()
    page.get_by_test_id("call-row").first.locator("a").click()
    page.wait_for_selector('[data-testid="timeline"]')
    assert "质检项" in page.content() and page.get_by_test_id("item-fail").first.inner_text().startswith("不合格")  # fmt: skip
    assert page.csp_errors == []
    page.context.close()


def test_timeline_markers_seek_and_the_playhead_follows(live_app: str, browser) -> None:
    page = open_zh(browser, live_app, "rev")
    page.goto(f"{live_app}/calls/c-a2-1")
    markers = page.get_by_test_id("timeline-marker")
    assert markers.count() >= 1
    rule = page.locator('[data-testid="timeline-marker"][data-kind="rule"]').first
    rule.click()
    want = float(rule.get_attribute("data-start"))
    page.wait_for_function(
        "t => Math.abs(document.getElementById('player').currentTime - t) < 0.6", arg=want
    )
    page.wait_for_function("() => parseFloat(document.getElementById('playhead').getAttribute('x1')) > 0")  # fmt: skip
    x = float(page.locator("#playhead").get_attribute("x1"))
    assert abs(x - want / 10.0 * 1000) < 120  # a 10 s call on a 1000-wide axis
    assert page.csp_errors == []
    page.context.close()


def test_keyboard_review(live_app: str, browser) -> None:
    page = open_zh(browser, live_app, "rev")
    first = page.get_by_test_id("call-row").first.get_attribute("data-call-id")
    page.get_by_test_id("call-row").first.locator("a").click()
    page.wait_for_selector("#player")
    player = page.locator("#player")
    page.locator("body").click(position={"x": 5, "y": 400})  # focus the page, not a field
    assert player.evaluate("a => a.paused")
    page.keyboard.press(" ")
    page.wait_for_function("() => !document.getElementById('player').paused")
    page.keyboard.press(" ")
    page.wait_for_function("() => document.getElementById('player').paused")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.wait_for_selector('[data-testid="utterance"].playing[data-idx="1"]')
    page.keyboard.press("?")
    assert page.get_by_test_id("shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert not page.get_by_test_id("shortcuts").is_visible()
    # f on the focused item marks it fail explicitly
    page.keyboard.press("]")
    page.keyboard.press("g")
    page.wait_for_selector('[data-testid="audit-row"]')
    page.keyboard.press("n")
    page.wait_for_url(re.compile(r"/calls/(?!" + re.escape(first) + r"\?)"))
    assert first not in page.url.split("?")[0]
    page.keyboard.press("p")
    page.wait_for_url(re.compile(r"/calls/" + re.escape(first) + r"\?"))
    page.context.close()


def test_search_across_and_within_calls(live_app: str, browser) -> None:
    page = open_zh(browser, live_app, "agent1")
    page.goto(f"{live_app}/search?q=" + quote("投诉"))
    rows = page.get_by_test_id("call-row")
    assert sorted(rows.nth(i).get_attribute("data-call-id") for i in range(rows.count())) == ["c-a1-1", "c-a1-2"]  # fmt: skip
    assert "投诉" in rows.first.get_by_test_id("search-hit").inner_text()
    rows.first.locator("a").click()
    page.wait_for_selector('[data-testid="find-hit"]')
    assert page.get_by_test_id("find-count").inner_text() == "1/1"
    page.get_by_test_id("find-input").fill("快递")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=find-hit]').length === 2")  # fmt: skip
    page.keyboard.press("Enter")
    assert page.get_by_test_id("find-count").inner_text() == "2/2"
    page.context.close()


def test_logout_kills_a_copied_cookie(live_app: str, browser) -> None:
    page = open_zh(browser, live_app, "rev")
    saved = page.context.cookies()
    page.get_by_test_id("logout").click()
    page.wait_for_url(f"{live_app}/login")
    thief = browser.new_context()
    thief.add_cookies(saved)
    tp = thief.new_page()
    tp.goto(f"{live_app}/")
    assert tp.url.startswith(f"{live_app}/login")
    thief.close()
    page.context.close()


def test_api_docs_render_offline(live_app: str, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    csp: list[str] = []
    page.on("request", lambda r: r.url.startswith(live_app) or outside.append(r.url))
    page.on("console", lambda m: "Content Security Policy" in m.text and csp.append(m.text))
    page.goto(f"{live_app}/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "callqa review API" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock")  # the operations rendered from /openapi.json
    assert outside == [] and csp == []
    context.close()


def test_text_typed_after_the_session_ended_survives_signing_in(live_app: str, browser) -> None:
    page = open_zh(browser, live_app, "rev")
    page.goto(f"{live_app}/calls/c-a2-2")
    other = browser.new_context()  # the same session ended elsewhere (logout in another tab)
    other.add_cookies(page.context.cookies())
    tab = other.new_page()
    tab.goto(f"{live_app}/")
    tab.get_by_test_id("logout").click()
    other.close()
    typed = "听录音确认有致歉"
    item = page.locator('[data-testid="item"][data-item-id="apology"]')
    item.locator('input[name="comment"]').fill(typed)
    item.get_by_test_id("item-pass").click()
    page.wait_for_url(re.compile(r"/login\?"))
    page.fill('input[name="username"]', "rev")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{live_app}/calls/c-a2-2")
    box = page.locator('[data-testid="item"][data-item-id="apology"] input[name="comment"]')
    assert box.input_value() == typed
    assert page.get_by_test_id("audit-row").count() == 0  # nothing applied behind their back
    page.context.close()
