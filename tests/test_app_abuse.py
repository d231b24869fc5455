"""The review app under abuse, from outside (issue 33): the real server on loopback, plain
HTTP clients bound to different loopback addresses (127.0.0.x), a real webhook receiver,
and `callqa serve` itself behind a pretend proxy. Each test failed on the code before the
fix; what it failed on is in its docstring.

- nobody can lock a colleague out (failures count per account *and* address);
- the password form is throttled like the login;
- a cross-site POST neither signs the victim out nor plants text;
- a draft is offered only to the user who typed it;
- signed-out requests write nothing;
- one event per call and change, from one sender thread, with an idempotency key;
- behind a trusted proxy, clients are told apart by X-Forwarded-For (and only there).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect, text

from pipeline.app import create_app
from pipeline.app.permissions import scope_of
from pipeline.app.webhook import Sender, Webhook
from pipeline.store import dispose_engines, open_store
from pipeline.store.outbox import Outbox
from pipeline.store.review import ReviewStore
from tests.builders import (
    FAST_HASHER,
    OWN,
    PASSWORD,
    build_store,
    free_port,
    fresh_store,
    live_server,
)

CALL_PAGE = f"/calls/{OWN}"
SPRAYED = [f"staff{n}" for n in range(12)]  # at most 4 failures each: no account slow-down
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def client(base: str, address: str = "127.0.0.1", **kw) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any 127.0.0.0/8 address)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=base, transport=transport, follow_redirects=False, timeout=30, **kw)  # fmt: skip


def csrf(c: httpx.Client, path: str = "/login") -> str:
    return CSRF.search(c.get(path).text).group(1)


def sign_in(c: httpx.Client, name: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
    token = csrf(c)
    return c.post("/login", data={"username": name, "password": password, "csrf_token": token}, headers=headers)  # fmt: skip


def signed_in(base: str, name: str, address: str = "127.0.0.1") -> httpx.Client:
    c = client(base, address)
    assert sign_in(c, name).status_code == 303
    return c


def item_id(c: httpx.Client, item: str = "apology") -> str:
    page = c.get(CALL_PAGE).text
    block = page[page.index(f'data-item-id="{item}"') :]
    return re.search(r"/items/(\d+)/override", block).group(1)


def row_counts(db_url: str) -> dict[str, int]:
    """Rows in every table of the store (read from the database file, not through the app)."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            names = [t for t in inspect(conn).get_table_names() if not t.startswith("search_fts")]
            return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in names}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the live app


class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver that takes a while to answer (so a thread per send would pile up)."""

    received: list[tuple[dict, dict]] = []
    delay = 0.2

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(type(self).delay)
        type(self).received.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


@pytest.fixture(scope="module")
def live(tmp_path_factory, receiver: str) -> Iterator[tuple[str, str]]:
    """(base URL, store URL) of the app served on loopback, with a webhook to ``receiver``."""
    root = tmp_path_factory.mktemp("abuse")
    db_url = build_store(root)
    hook = Webhook(receiver, "s3cret", backoff=0.05)
    app = create_app(db_url, var_dir=root / "var", secret_key="test-only-key", webhook=hook)
    with live_server(app) as base:
        yield base, db_url
    dispose_engines()


# --------------------------------------------------------------------------- 1. lock-out


def test_five_failures_from_one_address_never_lock_the_owner_out(live) -> None:
    """Before: five failures for a name from anywhere made the owner's right password
    answer 429 from every address for five minutes, and failures as ``REVIEWER`` counted
    for ``reviewer`` (the throttle lower-cased names, sign-in did not)."""
    base, _ = live
    attacker = client(base, "127.0.0.2")
    for _ in range(5):
        assert sign_in(attacker, "rev", "wrong guess").status_code == 401
    owner = client(base, "127.0.0.3")
    started = time.monotonic()
    assert sign_in(owner, "rev").status_code == 303  # signed in, perhaps a little slower
    assert time.monotonic() - started < 10
    assert owner.get("/").status_code == 200
    # the pair that failed is throttled
    refused = sign_in(attacker, "rev")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    # another spelling is another name: it locks nobody
    other = client(base, "127.0.0.4")
    for _ in range(5):
        assert sign_in(other, "TRAINER", "wrong guess").status_code == 401
    assert sign_in(other, "trainer").status_code == 303


# --------------------------------------------------------------------------- 5. password form


def test_wrong_current_passwords_on_the_password_form_are_throttled(live) -> None:
    """Before: 25 wrong current passwords all answered 400 and nothing was counted."""
    base, _ = live
    c = signed_in(base, "trainer", "127.0.0.5")
    token = csrf(c, "/account")
    codes = [
        c.post(
            "/account/password",
            data={"csrf_token": token, "current": f"guess {n}", "new": "another pass 2"},
        ).status_code  # fmt: skip
        for n in range(25)
    ]
    assert codes[:5] == [400] * 5
    assert set(codes[5:]) == {429}
    right = c.post("/account/password", data={"csrf_token": token, "current": PASSWORD, "new": "another pass 2"})  # fmt: skip
    assert right.status_code == 429 and int(right.headers["Retry-After"]) > 0
    assert c.get("/").status_code == 200  # nothing changed: still signed in
    assert sign_in(client(base, "127.0.0.6"), "trainer").status_code == 303  # old password


# --------------------------------------------------------------------------- 2. cross-site POST


def test_a_cross_site_post_neither_signs_out_nor_plants_text(live) -> None:
    """Before: the cookie-less cross-site POST was kept as a draft and answered with a new
    session cookie, which replaced the victim's (signed out); after signing in again the
    attacker's comment waited in the review form."""
    base, db_url = live
    victim = signed_in(base, "admin", "127.0.0.7")
    item = item_id(victim)
    before = row_counts(db_url)
    # what the other site's auto-submitting form sends: SameSite=Lax keeps the cookie back
    forged = client(base, "127.0.0.7").post(
        f"{CALL_PAGE}/items/{item}/override", data={"verdict": "pass", "comment": "PLANTED by evil"}
    )
    assert forged.status_code == 303
    assert "set-cookie" not in forged.headers
    assert row_counts(db_url) == before
    victim.cookies.update(forged.cookies)  # what the browser would do with a Set-Cookie
    assert victim.get("/").status_code == 200  # still signed in
    if victim.get(CALL_PAGE).status_code != 200:
        assert sign_in(victim, "admin").status_code == 303
    assert "PLANTED" not in victim.get(CALL_PAGE).text


# --------------------------------------------------------------------------- 3. whose draft


def test_a_draft_is_offered_only_to_the_user_who_typed_it(live) -> None:
    """Before: the draft went to whoever signed in next in that browser."""
    base, _ = live
    browser = signed_in(base, "rev", "127.0.0.8")
    item, token = item_id(browser), csrf(browser, "/")
    tab = client(base, "127.0.0.8", cookies=dict(browser.cookies))  # logout in another tab
    assert tab.post("/logout", data={"csrf_token": token}).status_code == 303
    typed = "REV-ONLY 客户没有投诉"
    r = browser.post(f"{CALL_PAGE}/items/{item}/override", data={"csrf_token": token, "verdict": "pass", "comment": typed})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert sign_in(browser, "admin").status_code == 303  # a colleague at the same desk
    assert typed not in browser.get(CALL_PAGE).text
    # the author, typing again after another lapse, gets their own text back
    owner = signed_in(base, "rev", "127.0.0.8")
    token = csrf(owner, "/")
    tab = client(base, "127.0.0.8", cookies=dict(owner.cookies))
    assert tab.post("/logout", data={"csrf_token": token}).status_code == 303
    owner.post(f"{CALL_PAGE}/items/{item}/override", data={"csrf_token": token, "verdict": "pass", "comment": typed})  # fmt: skip
    assert sign_in(owner, "rev").status_code == 303
    assert typed in owner.get(CALL_PAGE).text


# --------------------------------------------------------------------------- 4. anonymous writes


def test_signed_out_posts_write_nothing(live) -> None:
    """Before: each signed-out POST stored its text (about 8 KB) in ``form_drafts``: 40
    requests, 40 rows."""
    base, db_url = live
    before = row_counts(db_url)
    anon = client(base, "127.0.0.9")
    token = csrf(anon)  # a session with a token but no user
    big = "长" * 2700
    paths = [f"{CALL_PAGE}/items/1/override", f"{CALL_PAGE}/confirm", f"{CALL_PAGE}/items/1/dispute", "/queue/confirm"]  # fmt: skip
    codes = set()
    for n in range(40):
        fresh = client(base, "127.0.0.9") if n % 2 else anon
        data = {"verdict": "fail", "comment": big, "reason": big, "decision": "reject", "call_id": OWN}  # fmt: skip
        if n % 4 == 0:
            data["csrf_token"] = token
        codes.add(fresh.post(paths[n % len(paths)], data=data).status_code)
    assert codes == {303}
    assert row_counts(db_url) == before


# --------------------------------------------------------------------------- 6. webhook


def test_bulk_confirm_listing_one_call_50_times_sends_one_event_from_one_thread(live) -> None:
    """Before: one ``final_score`` event per listed id (50 for one call) and a thread per
    send."""
    base, _ = live
    rev = signed_in(base, "rev", "127.0.0.10")
    call = "c-a2-1"
    Receiver.received.clear()
    peak, stop = [threading.active_count()], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(threading.active_count())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    baseline = threading.active_count()
    token = csrf(rev, "/")
    r = rev.post("/queue/confirm", data={"csrf_token": token, "call_id": [call] * 50})
    assert r.status_code == 303
    deadline = time.monotonic() + 10
    while not Receiver.received and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # anything more would have come by now
    # nothing changed: confirming again sends nothing
    assert rev.post("/queue/confirm", data={"csrf_token": token, "call_id": call}).status_code == 303  # fmt: skip
    time.sleep(1.0)
    stop.set()
    sampler.join()
    events = [body for _, body in Receiver.received if body["call_id"] == call]
    assert len(events) == 1 and events[0]["event"] == "final_score"
    assert events[0]["review_status"] == "reviewed"
    headers = Receiver.received[0][0]
    assert headers["Idempotency-Key"] == headers["X-Callqa-Delivery"]
    assert max(peak) - baseline <= 2  # the server's sender thread and the receiver's one


def wait_for(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_outbox_keeps_events_while_the_receiver_is_down(store) -> None:
    """On each backend: an event waits in the store, retried, until the receiver is up;
    delivered once with its idempotency key; repeats are not queued, changes (a revert
    too) are; a second sender cannot claim a row the first holds."""
    down = ThreadingHTTPServer(("127.0.0.1", 0), Receiver, bind_and_activate=False)
    down.server_bind()  # the port is ours but nothing listens: connections are refused
    Receiver.received.clear()
    outbox = Outbox(store)
    sender = Sender(Webhook(f"http://127.0.0.1:{down.server_address[1]}/hook", "k", backoff=0.05, timeout=2), outbox)  # fmt: skip
    first = outbox.enqueue("final_score", "c1", {"call_id": "c1", "total": 10})
    assert first is not None
    assert outbox.enqueue("final_score", "c1", {"total": 10, "call_id": "c1"}) is None
    sender.wake()
    wait_for(lambda: outbox.events("c1")[0]["attempts"] >= 2)
    assert outbox.events("c1")[0]["delivered_at"] is None and Receiver.received == []
    down.server_activate()
    threading.Thread(target=down.serve_forever, daemon=True).start()
    try:
        wait_for(lambda: outbox.events("c1")[0]["delivered_at"] is not None)
        assert [(h["Idempotency-Key"], b["total"]) for h, b in Receiver.received] == [(first, 10)]
        for total in (20, 10):  # a change, then back: both are news
            assert outbox.enqueue("final_score", "c1", {"call_id": "c1", "total": total})
        sender.wake()
        wait_for(lambda: len(Receiver.received) == 3)
        assert [b["total"] for _, b in Receiver.received] == [10, 20, 10]
    finally:
        sender.stop()
        down.shutdown()
    other = Outbox(store)
    outbox.enqueue("final_score", "c2", {"call_id": "c2"})
    held = outbox.claim(10, timedelta(minutes=1))
    assert [e.subject for e in held] == ["c2"] and other.claim(10, timedelta(minutes=1)) == []


def test_a_review_action_writes_its_event_with_itself(template: Path, tmp_path: Path) -> None:
    """No sender running (a process that dies right after the change): the event is in the
    store already, waiting; a repeat of the action writes none."""
    reviews = ReviewStore(open_store(fresh_store(template, tmp_path)), FAST_HASHER)
    reviews.events = Outbox(reviews.store)
    admin = scope_of(reviews.authenticate("admin", PASSWORD))
    final = reviews.confirm(admin, OWN)
    reviews.confirm(admin, OWN)
    rows = reviews.events.events(OWN)
    assert [(r["event"], r["delivered_at"], r["payload"]["total"]) for r in rows] == [("final_score", None, final.total)]  # fmt: skip
    dispose_engines()


# --------------------------------------------------------------------------- bounded work


def test_oversized_bodies_and_packs_are_refused(live) -> None:
    """Before: a body of any size was parsed; a coaching pack had no upper limit."""
    base, _ = live
    admin = signed_in(base, "admin", "127.0.0.11")
    huge = admin.post("/filters", content=b"name=" + b"x" * (3 * 1024 * 1024), headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert huge.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(48):
            yield b"x" * 65536

    chunked = admin.post("/filters", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert chunked.status_code == 413
    assert admin.get("/coaching/pack.zip", params={"limit": "100000"}).status_code == 400
    assert admin.get("/").status_code == 200


# --------------------------------------------------------------------------- behind a proxy


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[str]:
    """``callqa serve`` in its own process, trusting 127.0.0.1 as its proxy."""
    root = tmp_path_factory.mktemp("serve")
    db_url = build_store(root, alaw_call=None)
    reviews = ReviewStore(open_store(db_url), FAST_HASHER)
    for name in SPRAYED:  # known names: a wrong guess costs a fast hash, not the dummy's
        reviews.add_user(name, PASSWORD, "trainer")
    dispose_engines()
    port = free_port()
    env = {**os.environ, "QA_TRUSTED_PROXIES": "127.0.0.1", "QA_SECRET_KEY": "test-only-key"}
    env.pop("QA_WEBHOOK_URL", None)
    cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--db", db_url, "--port", str(port), "--var-dir", str(root / "var")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"callqa serve did not start: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=20)


@pytest.mark.slow
def test_behind_a_trusted_proxy_one_clients_failures_throttle_only_that_client(served: str) -> None:
    """Before: ``callqa serve`` ignored X-Forwarded-For, so everyone behind the proxy
    shared its address and 20 failures by anyone throttled everyone."""
    proxy = client(served, "127.0.0.1")
    codes = [
        sign_in(proxy, SPRAYED[n % 12], "123456", **{"X-Forwarded-For": "127.0.0.66"}).status_code
        for n in range(22)
    ]
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]
    assert sign_in(proxy, "rev", **{"X-Forwarded-For": "127.0.0.67"}).status_code == 303
    # a client that is not the proxy cannot choose its address with the header
    direct = client(served, "127.0.0.12")
    codes = [
        sign_in(
            direct, SPRAYED[n % 12], "123456", **{"X-Forwarded-For": f"127.0.1.{n}"}
        ).status_code
        for n in range(22)
    ]
    assert codes[20:] == [429, 429]


@pytest.mark.slow
def test_a_bad_trusted_proxy_list_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "QA_TRUSTED_PROXIES": "127.0.0.1,proxy.internal"}
    cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--db", f"sqlite:///{tmp_path / 'qa.db'}", "--port", str(free_port()), "--var-dir", str(tmp_path / "var")]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "QA_TRUSTED_PROXIES" in done.stderr and "'proxy.internal'" in done.stderr
