"""The review app against an attacker and a careless network, server side: server-side
sessions, login throttling, security headers, absurd integers, idempotent overrides, text
kept across a lapsed session, ids with "/" and "%", one text size limit (web and API)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from pipeline.app.permissions import scope_of
from pipeline.app.security import LoginLimiter
from pipeline.schema import CallJob
from pipeline.store.review import MAX_TEXT, ReviewStore
from tests.builders import (
    OWN,
    PASSWORD,
    csrf_of,
    item_ids,
    login,
    make_result,
    make_transcript,
    write_wav,
)

HUGE = "99999999999999999999"


def cookie_of(client: TestClient) -> str:
    return client.cookies.get("callqa_session")


def replay(app, cookie: str, path: str = "/") -> int:
    """A request from another client that copied the cookie."""
    thief = TestClient(app, follow_redirects=False)
    thief.cookies.set("callqa_session", cookie)
    return thief.get(path).status_code


# --------------------------------------------------------------------------- sessions


def test_a_cookie_saved_before_logout_is_dead_after_it(app) -> None:
    client = login(app, "rev")
    saved = cookie_of(client)
    assert replay(app, saved) == 200
    client.post("/logout", data={"csrf_token": csrf_of(client, "/")})
    assert replay(app, saved) == 303  # to /login
    assert replay(app, saved, f"/calls/{OWN}") == 303


def test_password_change_ends_every_session(app) -> None:
    one, two = login(app, "rev"), login(app, "rev")
    saved = cookie_of(two)
    wrong = one.post("/account/password", data={"csrf_token": csrf_of(one, "/"), "current": "nope", "new": "another pass 2"})  # fmt: skip
    assert wrong.status_code == 400 and replay(app, saved) == 200
    r = one.post("/account/password", data={"csrf_token": csrf_of(one, "/"), "current": PASSWORD, "new": "another pass 2"})  # fmt: skip
    assert r.status_code == 303
    assert replay(app, saved) == 303 and one.get("/").status_code == 303
    assert app.state.reviews.authenticate("rev", "another pass 2") is not None


def test_deactivation_ends_sessions_even_after_reactivation(app) -> None:
    client = login(app, "trainer")
    saved = cookie_of(client)
    app.state.reviews.set_active("trainer", False)
    app.state.reviews.set_active("trainer", True)
    assert replay(app, saved) == 303


def test_the_cookie_holds_no_user_id(app) -> None:
    """The signed cookie carries a random session token only; the store says who it is."""
    import base64
    import json

    payload = cookie_of(login(app, "admin")).split(".")[0]
    data = json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))
    assert "uid" not in data and len(data["sid"]) >= 40


# --------------------------------------------------------------------------- throttling


@pytest.mark.slow
def test_password_spraying_from_one_address_is_throttled(app) -> None:
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client)
    codes = [
        client.post(
            "/login", data={"username": f"user{n}", "password": "guess", "csrf_token": token}
        ).status_code  # fmt: skip
        for n in range(25)
    ]
    assert codes[:20] == [401] * 20
    assert set(codes[20:]) == {429}
    # the address stays throttled even for a right password
    ok = client.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": token})  # fmt: skip
    assert ok.status_code == 429 and int(ok.headers["Retry-After"]) > 0


def test_account_failures_from_every_address_slow_it_down_but_never_refuse_it(app) -> None:
    """Failures of one account from many addresses add up (kept in the store) to a
    slow-down; only the pair that failed is refused. Names count in their one normal form:
    full-width ``ｒｅｖ`` is ``rev``, ``Rev`` is another name."""
    reviews: ReviewStore = app.state.reviews
    limiter = LoginLimiter(max_failures=3, window=60, max_ip_failures=100)
    for n in range(3):
        reviews.record_login("ｒｅｖ", f"10.0.0.{n}", ok=False)
    reviews.record_login("rev", "10.0.0.1", ok=False)
    reviews.record_login("rev ", "10.0.0.1", ok=False)
    reviews.record_login("Rev", "10.0.0.7", ok=False)
    wait, slow = limiter.check(reviews, "rev", "10.9.9.9")
    assert wait == 0 and slow == limiter.slow_step * 4  # 5 failures: two past the limit
    assert limiter.check(reviews, "rev", "10.0.0.1")[0] > 0  # 3 of them from there: refused
    assert limiter.check(reviews, "trainer", "10.9.9.9") == (0, 0)
    seen = reviews.login_failures(" rev ", "10.0.0.1", timedelta(seconds=60))
    assert (len(seen.account), len(seen.pair), len(seen.address)) == (5, 3, 3)
    assert len(reviews.login_failures("Rev", "10.0.0.7", timedelta(seconds=60)).account) == 1


# --------------------------------------------------------------------------- headers


def test_security_headers_on_every_response(app) -> None:
    client = login(app, "rev")
    for path in ("/login", "/", f"/calls/{OWN}", "/search?q=投诉", "/no-such-page"):
        h = client.get(path).headers
        csp = h["content-security-policy"]
        script = re.search(r"script-src ([^;]+)", csp).group(1)
        assert "'unsafe-inline'" not in script and "http" not in csp
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert h["x-content-type-options"] == "nosniff"
        assert h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "same-origin"
    assert client.get(f"/calls/{OWN}").headers["cache-control"] == "no-store"
    assert client.get("/search?q=投诉").headers["cache-control"] == "no-store"
    assert "max-age" in client.get("/static/app.css").headers["cache-control"]


def test_pages_have_no_inline_script_or_style(app) -> None:
    client = login(app, "rev")
    for path in (
        "/login",
        "/",
        f"/calls/{OWN}",
        "/search?q=投诉",
        "/account",
        "/users",
        "/api/docs",
    ):
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert " style=" not in html and " on" + "click=" not in html, path
        assert "cdn" not in html.lower() and "https://" not in html, path


# --------------------------------------------------------------------------- integers

ABSURD = [
    ("GET", f"/?page={HUGE}"),
    ("GET", "/?page=-1"),
    ("GET", f"/?per_page={HUGE}"),
    ("GET", "/?page=abc"),
    ("GET", f"/search?q=投诉&page={HUGE}"),
    ("GET", f"/calls/{OWN}?pos={HUGE}"),
    ("POST", f"/disputes/{HUGE}/ruling"),
    ("POST", "/disputes/-5/ruling"),
    ("POST", f"/calls/{OWN}/items/{HUGE}/override"),
    ("POST", f"/calls/{OWN}/items/{HUGE}/dispute"),
    ("POST", f"/filters/{HUGE}/delete"),
    ("GET", f"/api/calls?page={HUGE}"),
    ("POST", f"/api/disputes/{HUGE}/ruling"),
    ("POST", f"/api/calls/{OWN}/items/{HUGE}/override"),
]


@pytest.mark.parametrize(("method", "path"), ABSURD)
def test_absurd_integers_never_give_a_server_error(app, method, path) -> None:
    client = login(app, "admin")
    client.headers["Authorization"] = f"Bearer {app.state.reviews.issue_token('admin')}"
    if method == "GET":
        status = client.get(path).status_code
    elif path.startswith("/api/"):
        status = client.post(path, json={"passed": True, "upheld": True}).status_code
    else:
        form = {"csrf_token": csrf_of(client, "/"), "verdict": "pass", "decision": "uphold"}
        status = client.post(path, data=form).status_code
    assert status in (200, 400, 404), (path, status)


# --------------------------------------------------------------------------- overrides


def test_override_is_idempotent(app) -> None:
    client = login(app, "rev")
    apology = item_ids(app, OWN)["apology"]
    form = {"csrf_token": csrf_of(client, "/"), "verdict": "pass", "comment": "said sorry"}
    for _ in range(3):  # a double click, a stale tab resubmitting
        assert client.post(f"/calls/{OWN}/items/{apology}/override", data=form).status_code == 303
    reviews: ReviewStore = app.state.reviews
    rev = reviews.authenticate("rev", PASSWORD)
    assert reviews.final_score(scope_of(rev), OWN).total == 30
    assert [(a.before, a.after) for a in reviews.audit(scope_of(rev), OWN)] == [(False, True)]
    no_verdict = client.post(f"/calls/{OWN}/items/{apology}/override", data={"csrf_token": form["csrf_token"]})  # fmt: skip
    assert no_verdict.status_code == 400
    back = {**form, "verdict": "fail"}
    client.post(f"/calls/{OWN}/items/{apology}/override", data=back)
    assert reviews.final_score(scope_of(rev), OWN).total == 20


def test_api_override_needs_and_keeps_an_explicit_verdict(app) -> None:
    reviews: ReviewStore = app.state.reviews
    client = TestClient(app)
    rev = {"Authorization": f"Bearer {reviews.issue_token('rev')}"}
    apology = item_ids(app, OWN)["apology"]
    url = f"/api/calls/{OWN}/items/{apology}/override"
    assert client.post(url, json={"comment": "x"}, headers=rev).status_code in (400, 422)
    totals = [client.post(url, json={"passed": True}, headers=rev).json()["total"] for _ in range(2)]  # fmt: skip
    assert totals == [30, 30]


# --------------------------------------------------------------------------- lapsed session


def test_a_post_after_the_session_ended_returns_to_the_call_with_the_text(app) -> None:
    client = login(app, "rev")
    token = csrf_of(client, "/")
    app.state.reviews.revoke_session(client_session_token(client))  # expired / revoked
    apology = item_ids(app, OWN)["apology"]
    typed = "客户说的是“好的”，不是投诉"
    r = client.post(f"/calls/{OWN}/items/{apology}/override", data={"csrf_token": token, "verdict": "pass", "comment": typed})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    page = client.get(r.headers["location"]).text
    assert f'name="next" value="/calls/{OWN}"' in page
    r = client.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": csrf_of(client), "next": f"/calls/{OWN}"})  # fmt: skip
    assert r.headers["location"] == f"/calls/{OWN}"
    call = client.get(f"/calls/{OWN}").text
    assert typed in call  # waiting in the item's comment box
    assert typed not in client.get(f"/calls/{OWN}").text  # once
    reviews: ReviewStore = app.state.reviews
    assert (
        reviews.audit(scope_of(reviews.authenticate("rev", PASSWORD)), OWN) == []
    )  # nothing applied


def client_session_token(client: TestClient) -> str:
    import base64
    import json

    payload = client.cookies.get("callqa_session").split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


# --------------------------------------------------------------------------- ids


def test_ids_with_slashes_and_percent_are_reachable(app, tmp_path: Path) -> None:
    odd = "2026/11/03 a%2F#?b"
    store = app.state.reviews.store
    src = write_wav(tmp_path / "odd.wav")
    store.save_scored(CallJob(call_id=odd, source=str(src), agent_id="A1"), make_transcript(odd), make_result(odd, True, False, "high"))  # fmt: skip
    client = login(app, "rev")
    queue = client.get("/?sort=newest").text
    href = f"/calls/{quote(odd, safe='')}"
    assert f'href="{href}?' in queue
    page = client.get(href)
    assert page.status_code == 200 and odd in page.text
    assert client.get(f"{href}/audio").status_code == 200
    item = item_ids(app, odd)["apology"]
    r = client.post(f"{href}/items/{item}/override", data={"csrf_token": csrf_of(client, "/"), "verdict": "pass"})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith(href)
    api = TestClient(app)
    token = {"Authorization": f"Bearer {app.state.reviews.issue_token('rev')}"}
    assert api.get(f"/api{href}", headers=token).json()["call"]["call_id"] == odd


def test_user_names_with_slashes_can_be_managed(app) -> None:
    app.state.reviews.add_user("ops/night", "long enough 1", "trainer")
    client = login(app, "admin")
    users = client.get("/users").text
    assert 'action="/users/ops%2Fnight/active"' in users
    r = client.post("/users/ops%2Fnight/active", data={"csrf_token": csrf_of(client, "/"), "active": "0"})  # fmt: skip
    assert r.status_code == 303
    assert not next(u for u in app.state.reviews.list_users() if u.username == "ops/night").active


# --------------------------------------------------------------------------- size limit


def test_one_size_limit_for_comments_and_reasons(app) -> None:
    reviews: ReviewStore = app.state.reviews
    apology = item_ids(app, OWN)["apology"]
    too_long, longest = "长" * (MAX_TEXT + 1), "长" * MAX_TEXT
    web = login(app, "rev")
    token = csrf_of(web, "/")
    url = f"/calls/{OWN}/items/{apology}/override"
    assert web.post(url, data={"csrf_token": token, "verdict": "pass", "comment": too_long}).status_code == 400  # fmt: skip
    api = TestClient(app)
    rev = {"Authorization": f"Bearer {reviews.issue_token('rev')}"}
    assert api.post(f"/api{url}", json={"passed": True, "comment": too_long}, headers=rev).status_code == 400  # fmt: skip
    agent = {"Authorization": f"Bearer {reviews.issue_token('agent1')}"}
    dispute = f"/api/calls/{OWN}/items/{apology}/dispute"
    assert api.post(dispute, json={"reason": "x" * (1024 * 1024)}, headers=agent).status_code == 400  # fmt: skip
    assert reviews.audit(scope_of(reviews.authenticate("rev", PASSWORD)), OWN) == []
    assert api.post(f"/api{url}", json={"passed": True, "comment": longest}, headers=rev).status_code == 200  # fmt: skip
    assert f'maxlength="{MAX_TEXT}"' in web.get(f"/calls/{OWN}").text
