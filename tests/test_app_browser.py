"""The review app in a real headless Chromium (Debian's, driven by Playwright) against the
real server (uvicorn on a free local port): login, queue, seek by utterance, range request,
override with audit, a dispute and its ruling, and agent isolation."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from pipeline.store import dispose_engines
from tests.test_app import OWN, PASSWORD, UTT_STARTS, build_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
SCREENSHOT_DIR = os.environ.get("CALLQA_SCREENSHOTS")  # set to keep a screenshot of the page


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from pipeline.app import create_app

    root = tmp_path_factory.mktemp("browser")
    os.environ.pop("QA_WEBHOOK_URL", None)
    app = create_app(build_store(root), var_dir=root / "var", secret_key="test-only-key")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the app server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
    dispose_engines()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def login(browser, base: str, name: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill('input[name="username"]', name)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"{base}/")
    return page


def total(page) -> float:
    return float(page.get_by_test_id("total-score").inner_text())


def test_reviewer_works_a_call(server: str, browser) -> None:
    page = login(browser, server, "rev")
    rows = page.get_by_test_id("call-row")
    assert rows.count() == 4
    page.click(f'[data-testid="call-row"][data-call-id="{OWN}"] a')
    page.wait_for_url(f"{server}/calls/{OWN}")

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
    resp = page.request.get(f"{server}{src}", headers={"Range": "bytes=0-1023"})
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


def test_dispute_and_ruling(server: str, browser) -> None:
    call = "c-a1-2"
    agent = login(browser, server, "agent1")
    agent.goto(f"{server}/calls/{call}")
    item = agent.locator('[data-testid="item"][data-item-id="apology"]')
    item.get_by_test_id("dispute-reason").fill("I apologised at 8.5 s")
    item.get_by_test_id("item-dispute").click()
    agent.wait_for_selector('[data-testid="dispute"][data-status="open"]')
    machine_total = total(agent)

    reviewer = login(browser, server, "rev")
    reviewer.goto(f"{server}/calls/{call}")
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


def test_agent_sees_only_their_calls(server: str, browser) -> None:
    page = login(browser, server, "agent1")
    rows = page.get_by_test_id("call-row")
    assert rows.count() == 2
    assert sorted(rows.nth(i).get_attribute("data-call-id") for i in range(2)) == ["c-a1-1", "c-a1-2"]  # fmt: skip
    response = page.goto(f"{server}/calls/c-a2-1")
    assert response.status in (403, 404)
    audio = page.request.get(f"{server}/calls/c-a2-1/audio", headers={"Range": "bytes=0-99"})
    assert audio.status in (403, 404)
    page.context.close()
