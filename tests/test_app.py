"""The review web app, server side: accounts, every role × route, queue, overrides with
audit, disputes, calibration, audio with range requests, the token API and the webhook.

The store is built in tmp_path from pipeline.schema objects with real WAV recordings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import threading
import wave
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from pipeline.app import create_app
from pipeline.app.permissions import scope_of
from pipeline.app.security import LoginLimiter, secret_key
from pipeline.app.webhook import SIGNATURE_HEADER, Webhook
from pipeline.cli import cli
from pipeline.schema import CallJob
from pipeline.store import dispose_engines, open_store
from pipeline.store.review import QueueFilter, ReviewStore
from tests.builders import (
    CALLS,
    OWN,
    PASSWORD,
    USERS,
    csrf_of,
    fresh_store,
    item_ids,
    login,
    make_result,
    make_transcript,
    queue_ids,
)


@pytest.fixture
def env(app, tmp_path: Path):
    """The review app (conftest) and its tmp_path."""
    return app, tmp_path


def total_on_page(html: str) -> float:
    return float(re.search(r'data-testid="total-score">([^<]+)<', html).group(1))


# --------------------------------------------------------------------------- accounts


def test_healthz_and_login_page(env) -> None:
    app, _ = env
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    page = client.get("/login").text
    assert 'name="username"' in page and 'name="password"' in page and "csrf_token" in page


def test_login_needs_csrf_and_right_password(env) -> None:
    app, _ = env
    client = TestClient(app, follow_redirects=False)
    no_csrf = client.post("/login", data={"username": "rev", "password": PASSWORD})
    assert no_csrf.status_code == 403
    token = csrf_of(client)
    wrong = client.post("/login", data={"username": "rev", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401
    ok = client.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": token})
    assert ok.status_code == 303 and ok.headers["location"] == "/"
    assert client.get("/").status_code == 200
    token = csrf_of(client, "/")
    assert client.post("/logout", data={}).status_code == 403  # logout is a CSRF'd form too
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 303  # back to /login


def test_login_is_rate_limited_per_user_and_ip(template: Path, tmp_path: Path, monkeypatch) -> None:  # fmt: skip
    monkeypatch.delenv("QA_SECRET_KEY", raising=False)
    app = create_app(fresh_store(template, tmp_path), var_dir=tmp_path / "var", login_limiter=LoginLimiter(3, 60))  # fmt: skip
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client)
    for _ in range(3):
        r = client.post("/login", data={"username": "rev", "password": "x", "csrf_token": token})
        assert r.status_code == 401
    blocked = client.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": token})  # fmt: skip
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    other = client.post("/login", data={"username": "trainer", "password": PASSWORD, "csrf_token": token})  # fmt: skip
    assert other.status_code == 303
    dispose_engines()


def test_open_redirect_after_login_is_refused(env) -> None:
    app, _ = env
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client)
    r = client.post("/login", data={"username": "rev", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"})  # fmt: skip
    assert r.headers["location"] == "/"


def test_deactivated_user_loses_the_session(env) -> None:
    app, _ = env
    client = login(app, "trainer")
    app.state.reviews.set_active("trainer", False)
    assert client.get("/").status_code == 303


# --------------------------------------------------------------------------- role × route

ROLES = ["admin", "rev", "trainer", "agent1", "agent2"]


def _route_status(app, who: str, method: str, path: str, data: dict | None) -> int:
    client = login(app, who) if who != "anon" else TestClient(app, follow_redirects=False)
    if method == "GET":
        return client.get(path).status_code
    token = csrf_of(client, "/") if who != "anon" else "x"
    return client.post(path, data={"csrf_token": token, **(data or {})}).status_code


# (method, path, data, expected status per role in ROLES order, anonymous)
MATRIX = [
    ("GET", "/", None, [200, 200, 200, 200, 200], 303),
    ("GET", f"/calls/{OWN}", None, [200, 200, 200, 200, 404], 303),
    ("GET", "/calls/no-such-call", None, [404, 404, 404, 404, 404], 303),
    ("GET", f"/calls/{OWN}/audio", None, [200, 200, 200, 200, 404], 303),
    (
        "POST",
        f"/calls/{OWN}/items/{{greeting}}/override",
        {"comment": "x", "verdict": "fail"},
        [303, 303, 403, 403, 403],
        303,
    ),  # fmt: skip
    ("POST", f"/calls/{OWN}/confirm", {}, [303, 303, 403, 403, 403], 303),
    (
        "POST",
        f"/calls/{OWN}/items/{{apology}}/dispute",
        {"reason": "I did apologise"},
        [403, 403, 403, 303, 404],  # another agent's call does not exist for agent2
        303,
    ),  # fmt: skip
    ("GET", "/calibration", None, [200, 200, 200, 403, 403], 303),
    ("GET", "/calibration.csv", None, [200, 200, 200, 403, 403], 303),
    ("GET", "/calibration/zh_ecommerce", None, [200, 200, 200, 403, 403], 303),
    ("GET", "/users", None, [200, 403, 403, 403, 403], 303),
    (
        "POST",
        "/users",
        {"username": "new1", "password": "longenough", "role": "trainer"},
        [303, 403, 403, 403, 403],
        303,
    ),  # fmt: skip
    ("POST", "/users/trainer/active", {"active": "1"}, [303, 403, 403, 403, 403], 303),
]


@pytest.mark.parametrize(("method", "path", "data", "expected", "anon"), MATRIX)
def test_every_role_on_every_route(env, method, path, data, expected, anon) -> None:
    app, _ = env
    ids = item_ids(app, OWN)
    path = path.format(**ids)
    got = [_route_status(app, who, method, path, data) for who in ROLES]
    assert got == expected
    assert _route_status(app, "anon", method, path, data) == anon


def test_ruling_is_for_reviewers_only(env) -> None:
    app, _ = env
    agent = login(app, "agent1")
    apology = item_ids(app, OWN)["apology"]
    agent.post(f"/calls/{OWN}/items/{apology}/dispute", data={"csrf_token": csrf_of(agent, "/"), "reason": "said sorry"})  # fmt: skip
    dispute_id = app.state.reviews.disputes(scope_of(app.state.reviews.authenticate("rev", PASSWORD)), OWN)[0].id  # fmt: skip
    for who, status in [("agent1", 403), ("trainer", 403), ("agent2", 403), ("rev", 303)]:
        c = login(app, who)
        r = c.post(f"/disputes/{dispute_id}/ruling", data={"csrf_token": csrf_of(c, "/"), "decision": "reject"})  # fmt: skip
        assert r.status_code == status, who


# --------------------------------------------------------------------------- queue


def test_agent_sees_exactly_their_calls(env) -> None:
    app, _ = env
    assert sorted(queue_ids(login(app, "agent1"))) == ["c-a1-1", "c-a1-2"]
    assert sorted(queue_ids(login(app, "agent2"))) == ["c-a2-1", "c-a2-2"]
    # a filter cannot widen an agent's view
    assert sorted(queue_ids(login(app, "agent1"), "?agent_id=A2")) == []


def test_queue_puts_what_needs_a_human_first(env) -> None:
    app, _ = env
    rows = queue_ids(login(app, "rev"))
    assert rows[:2] == ["c-a2-1", "c-a1-1"]  # auto-fail + needs_review, then needs_review
    assert sorted(rows) == sorted(CALLS)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?risk_level=high", ["c-a1-1"]),
        ("?team=T2", ["c-a2-1", "c-a2-2"]),
        ("?agent_id=A1", ["c-a1-1", "c-a1-2"]),
        ("?item_failed=no_forbidden", ["c-a2-1"]),
        ("?date_from=2026-11-02&date_to=2026-11-03", ["c-a1-2", "c-a2-1"]),
        ("?review_status=reviewed", []),
        ("?review_status=auto&sort=newest", ["c-a2-2", "c-a2-1", "c-a1-2", "c-a1-1"]),
        ("?sort=satisfaction", ["c-a1-1", "c-a2-2", "c-a2-1", "c-a1-2"]),  # least satisfied first
    ],
)
def test_queue_filters(env, query: str, expected: list[str]) -> None:
    app, _ = env
    got = queue_ids(login(app, "rev"), query)
    assert (got if "sort=" in query else sorted(got)) == expected


def test_queue_paginates(env) -> None:
    app, _ = env
    reviews: ReviewStore = app.state.reviews
    rev = reviews.authenticate("rev", PASSWORD)
    seen = []
    for page in (1, 2, 3):
        p = reviews.queue(scope_of(rev), QueueFilter(per_page=2, page=page))
        seen += [r.call_id for r in p.rows]
        assert p.has_next == (page == 1)
    assert sorted(seen) == sorted(CALLS)
    assert login(app, "rev").get("/?page=0").status_code == 400


# --------------------------------------------------------------------------- review


def test_override_sets_the_verdict_recomputes_and_is_audited(env) -> None:
    app, _ = env
    client = login(app, "rev")
    machine_before = app.state.reviews.store.get_result(OWN).model_dump()
    page = client.get(f"/calls/{OWN}").text
    assert total_on_page(page) == 20 and 'data-testid="audit-row"' not in page
    apology = item_ids(app, OWN)["apology"]
    r = client.post(f"/calls/{OWN}/items/{apology}/override", data={"csrf_token": csrf_of(client, "/"), "comment": "apologised at 8.5 s", "verdict": "pass"})  # fmt: skip
    assert r.status_code == 303
    page = client.get(f"/calls/{OWN}").text
    assert total_on_page(page) == 30
    assert page.count('data-testid="audit-row"') == 1 and "apologised at 8.5 s" in page
    assert 'data-testid="review-status" data-status="reviewed"' in page
    assert app.state.reviews.store.get_result(OWN).model_dump() == machine_before  # untouched
    # failing the critical item fails the whole form
    crit = item_ids(app, OWN)["no_forbidden"]
    client.post(f"/calls/{OWN}/items/{crit}/override", data={"csrf_token": csrf_of(client, "/"), "verdict": "fail"})  # fmt: skip
    rev = app.state.reviews.authenticate("rev", PASSWORD)
    final = app.state.reviews.final_score(scope_of(rev), OWN)
    assert final.auto_fail and final.total == 0
    audit = app.state.reviews.audit(scope_of(rev), OWN)
    assert [(a.item_id, a.before, a.after, a.user) for a in audit] == [
        ("apology", False, True, "rev"),
        ("no_forbidden", True, False, "rev"),
    ]
    assert queue_ids(client, "?review_status=reviewed") == [OWN]


def test_dispute_upheld_changes_the_final_score(env) -> None:
    app, _ = env
    reviews: ReviewStore = app.state.reviews
    agent = login(app, "agent1")
    apology = item_ids(app, OWN)["apology"]
    r = agent.post(f"/calls/{OWN}/items/{apology}/dispute", data={"csrf_token": csrf_of(agent, "/"), "reason": "I apologised at 8.5 s"})  # fmt: skip
    assert r.status_code == 303
    rev = reviews.authenticate("rev", PASSWORD)
    assert reviews.final_score(scope_of(rev), OWN).review_status == "disputed"
    (d,) = reviews.disputes(scope_of(rev), OWN)
    assert d.status == "open" and d.raised_by == "agent1"
    # a second open dispute on the same item is refused (flash), not duplicated
    agent.post(f"/calls/{OWN}/items/{apology}/dispute", data={"csrf_token": csrf_of(agent, "/"), "reason": "again"})  # fmt: skip
    assert len(reviews.disputes(scope_of(rev), OWN)) == 1
    reviewer = login(app, "rev")
    reviewer.post(f"/disputes/{d.id}/ruling", data={"csrf_token": csrf_of(reviewer, "/"), "decision": "uphold", "comment": "heard it"})  # fmt: skip
    page = agent.get(f"/calls/{OWN}").text  # the agent sees the outcome
    assert 'data-testid="dispute-status" data-status="upheld"' in page and "heard it" in page
    assert total_on_page(page) == 30
    assert reviews.final_score(scope_of(rev), OWN).review_status == "reviewed"


def test_dispute_rejected_keeps_the_score(env) -> None:
    app, _ = env
    reviews: ReviewStore = app.state.reviews
    agent1 = reviews.authenticate("agent1", PASSWORD)
    rev = reviews.authenticate("rev", PASSWORD)
    d = reviews.dispute(scope_of(agent1), OWN, item_ids(app, OWN)["apology"], "no")
    final = reviews.rule(scope_of(rev), d, upheld=False, comment="no apology heard")
    assert final.total == 20 and reviews.disputes(scope_of(agent1), OWN)[0].status == "rejected"
    with pytest.raises(Exception, match="already rejected"):
        reviews.rule(scope_of(rev), d, upheld=True)


def test_agent_cannot_dispute_another_agents_call(env) -> None:
    app, _ = env
    client = login(app, "agent2")
    apology = item_ids(app, OWN)["apology"]
    r = client.post(f"/calls/{OWN}/items/{apology}/dispute", data={"csrf_token": csrf_of(client, "/"), "reason": "x"})  # fmt: skip
    assert r.status_code == 404


def test_item_of_another_call_is_refused(env) -> None:
    app, _ = env
    client = login(app, "rev")
    other = item_ids(app, "c-a2-1")["apology"]
    r = client.post(f"/calls/{OWN}/items/{other}/override", data={"csrf_token": csrf_of(client, "/"), "verdict": "pass"})  # fmt: skip
    assert r.status_code == 404


def test_calibration_counts_overturns(env) -> None:
    app, _ = env
    reviews: ReviewStore = app.state.reviews
    rev = reviews.authenticate("rev", PASSWORD)
    reviews.override(
        scope_of(rev), OWN, item_ids(app, OWN)["apology"], True
    )  # machine fail overturned
    reviews.confirm(scope_of(rev), "c-a1-2")  # machine fail confirmed
    rows = {r.item_id: r for r in reviews.calibration()}
    apology = rows["apology"]
    assert (apology.scored, apology.machine_fails, apology.reviewed) == (4, 4, 2)
    assert (apology.confirmed_fails, apology.overturned) == (1, 1)
    assert apology.fail_precision == 0.5 and apology.overturn_rate == 0.5
    assert rows["greeting"].overturn_rate == 0.0 and rows["greeting"].fail_precision is None
    csv_text = login(app, "trainer").get("/calibration.csv").text
    # a UTF-8 BOM first (pipeline.cells.csv_lines, as every export), so Excel reads UTF-8
    assert csv_text.splitlines()[0].startswith("\ufeffrubric_id,item_id") and "apology" in csv_text


# --------------------------------------------------------------------------- audio


def test_audio_answers_range_requests(env) -> None:
    app, tmp = env
    client = login(app, "rev")
    full = client.get(f"/calls/{OWN}/audio")
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    assert full.content == (tmp / "audio" / f"{OWN}.wav").read_bytes()
    part = client.get(f"/calls/{OWN}/audio", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1099/{len(full.content)}"
    assert part.content == full.content[100:1100]
    tail = client.get(f"/calls/{OWN}/audio", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == full.content[-10:]
    bad = client.get(f"/calls/{OWN}/audio", headers={"Range": f"bytes={len(full.content) + 5}-"})
    assert bad.status_code == 416


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed to write A-law WAV")
def test_alaw_recording_is_decoded_once_to_pcm_wav(env) -> None:
    app, tmp = env
    client = login(app, "agent2")
    r = client.get("/calls/c-a2-2/audio", headers={"Range": "bytes=0-43"})
    assert r.status_code == 206 and r.content[:4] == b"RIFF"
    cached = list((tmp / "var" / "audio_cache").glob("*.wav"))
    assert len(cached) == 1
    with wave.open(str(cached[0])) as w:
        assert w.getsampwidth() == 2 and abs(w.getnframes() / w.getframerate() - 10.0) < 0.05
    mtime = cached[0].stat().st_mtime_ns
    client.get("/calls/c-a2-2/audio")
    assert cached[0].stat().st_mtime_ns == mtime  # served from the cache


def test_redacted_spans_are_beeped_for_every_role(env) -> None:
    app, tmp = env
    store = app.state.reviews.store
    spans = [
        {
            "utterance": 1,
            "start": 3.0,
            "end": 4.0,
            "type": "PHONE",
            "char_start": 0,
            "char_end": 5,
            "mask": "[手机号]",
        }  # fmt: skip
    ]
    job = CallJob(call_id="c-a1-1", source=str(tmp / "audio" / "c-a1-1.wav"), agent_id="A1", team="T1")  # fmt: skip
    rescored = make_result("c-a1-1", True, False, "high")
    rescored.rubric.version = 4  # a new result version, scored from the redacted transcript
    store.save_scored(job, make_transcript("c-a1-1", spans), rescored)
    original = (tmp / "audio" / f"{OWN}.wav").read_bytes()
    masked = login(app, "agent1").get(f"/calls/{OWN}/audio").content
    assert masked != original
    # reviewers and admins hear the same redacted recording: the original is never served
    assert login(app, "rev").get(f"/calls/{OWN}/audio").content == masked
    assert login(app, "admin").get(f"/calls/{OWN}/audio").content == masked

    def samples(raw: bytes) -> tuple[np.ndarray, int]:
        path = tmp / "probe.wav"
        path.write_bytes(raw)
        with wave.open(str(path)) as w:
            return np.frombuffer(w.readframes(w.getnframes()), "<i2") / 32768.0, w.getframerate()

    x, sr = samples(masked)
    ref = np.sin(2 * np.pi * 300 * np.arange(len(x)) / sr) * 0.3  # the call's 300 Hz tone
    inside = slice(int(3.2 * sr), int(3.8 * sr))
    outside = slice(int(6.0 * sr), int(7.0 * sr))
    assert np.corrcoef(x[outside], ref[outside])[0, 1] > 0.9  # speech kept
    assert abs(np.corrcoef(x[inside], ref[inside])[0, 1]) < 0.5  # the span is masked


# --------------------------------------------------------------------------- API


def test_api_needs_a_token_and_keeps_agents_apart(env) -> None:
    app, _ = env
    reviews: ReviewStore = app.state.reviews
    client = TestClient(app)
    assert client.get("/api/calls").status_code == 401
    assert client.get("/api/calls", headers={"Authorization": "Bearer nope"}).status_code == 401
    agent = {"Authorization": f"Bearer {reviews.issue_token('agent1')}"}
    rows = client.get("/api/calls", headers=agent).json()["rows"]
    assert sorted(r["call_id"] for r in rows) == ["c-a1-1", "c-a1-2"]
    assert client.get("/api/calls/c-a2-1", headers=agent).status_code == 404
    assert client.get("/api/calls/c-a2-1/transcript", headers=agent).status_code == 404
    apology = item_ids(app, OWN)["apology"]
    assert client.post(f"/api/calls/{OWN}/items/{apology}/override", json={"passed": True}, headers=agent).status_code == 403  # fmt: skip
    assert client.get("/api/calibration", headers=agent).status_code == 403

    rev = {"Authorization": f"Bearer {reviews.issue_token('rev')}"}
    r = client.post(f"/api/calls/{OWN}/items/{apology}/override", json={"passed": True, "comment": "ok"}, headers=rev)  # fmt: skip
    assert r.status_code == 200 and r.json()["total"] == 30
    detail = client.get(f"/api/calls/{OWN}", headers=rev).json()
    assert detail["final"]["review_status"] == "reviewed" and detail["audit"][0]["comment"] == "ok"
    assert client.get(f"/api/calls/{OWN}/result", headers=rev).json()["total"] == 20  # machine
    assert client.get("/api/users", headers=rev).status_code == 403
    admin = {"Authorization": f"Bearer {reviews.issue_token('admin')}"}
    assert len(client.get("/api/users", headers=admin).json()) == len(USERS)


def test_api_dispute_and_ruling(env) -> None:
    app, _ = env
    reviews: ReviewStore = app.state.reviews
    client = TestClient(app)
    agent = {"Authorization": f"Bearer {reviews.issue_token('agent1')}"}
    rev = {"Authorization": f"Bearer {reviews.issue_token('rev')}"}
    apology = item_ids(app, OWN)["apology"]
    r = client.post(f"/api/calls/{OWN}/items/{apology}/dispute", json={"reason": "said sorry"}, headers=agent)  # fmt: skip
    assert r.status_code == 200
    d = r.json()["dispute_id"]
    assert client.post(f"/api/disputes/{d}/ruling", json={"upheld": True}, headers=agent).status_code == 403  # fmt: skip
    r = client.post(f"/api/disputes/{d}/ruling", json={"upheld": True, "comment": "yes"}, headers=rev)  # fmt: skip
    assert r.status_code == 200 and r.json()["total"] == 30


def test_openapi_describes_the_api(env) -> None:
    app, _ = env
    spec = TestClient(app).get("/openapi.json").json()
    for path in ("/api/calls", "/api/calls/{call_id}", "/api/disputes/{dispute_id}/ruling", "/api/calibration"):  # fmt: skip
        assert path in spec["paths"]
    assert "/calls/{call_id}" not in spec["paths"]  # HTML pages are not API


# --------------------------------------------------------------------------- webhook


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        code = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    _Receiver.answers, _Receiver.received = [], []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver
    server.shutdown()


def test_webhook_posts_signed_final_scores_and_retries(template: Path, tmp_path: Path, receiver, monkeypatch) -> None:  # fmt: skip
    url, rec = receiver
    rec.answers = [500, 503]  # two failures, then 200
    monkeypatch.delenv("QA_SECRET_KEY", raising=False)
    hook = Webhook(url, "s3cret", retries=3, backoff=0.01)
    app = create_app(fresh_store(template, tmp_path), var_dir=tmp_path / "var", webhook=hook)
    client = login(app, "rev")
    apology = item_ids(app, OWN)["apology"]
    client.post(f"/calls/{OWN}/items/{apology}/override", data={"csrf_token": csrf_of(client, "/"), "verdict": "pass"})  # fmt: skip
    for _ in range(200):
        if len(rec.received) >= 3:
            break
        threading.Event().wait(0.02)
    assert len(rec.received) == 3
    headers, body = rec.received[-1]
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert len({h["X-Callqa-Delivery"] for h, _ in rec.received}) == 1  # same delivery id
    payload = json.loads(body)
    assert (
        payload["event"] == "final_score" and payload["call_id"] == OWN and payload["total"] == 30
    )
    dispose_engines()


def test_webhook_gives_up_on_client_errors(receiver) -> None:
    url, rec = receiver
    rec.answers = [400]
    assert Webhook(url, "k", retries=3, backoff=0.01).deliver("final_score", {"x": 1}) is False
    assert len(rec.received) == 1
    with pytest.raises(ValueError, match="secret"):
        Webhook(url, "")


# --------------------------------------------------------------------------- CLI, secrets


def test_cli_users_add(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'qa.db'}"
    runner = CliRunner()
    ok = runner.invoke(cli, ["users", "add", "li", "--role", "agent", "--agent-id", "A9", "--password-stdin", "--db", url], input="longpassword\n")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert ReviewStore(open_store(url)).authenticate("li", "longpassword").agent_id == "A9"
    dup = runner.invoke(cli, ["users", "add", "li", "--role", "agent", "--agent-id", "A9", "--password-stdin", "--db", url], input="longpassword\n")  # fmt: skip
    assert dup.exit_code != 0 and "already exists" in dup.output
    no_agent = runner.invoke(cli, ["users", "add", "wu", "--role", "agent", "--password-stdin", "--db", url], input="longpassword\n")  # fmt: skip
    assert no_agent.exit_code != 0
    bad_role = runner.invoke(cli, ["users", "add", "wu", "--role", "boss", "--password-stdin", "--db", url], input="longpassword\n")  # fmt: skip
    assert bad_role.exit_code != 0
    token = runner.invoke(cli, ["users", "token", "li", "--db", url])
    assert token.exit_code == 0 and token.output.startswith("cqa_")
    reviews = ReviewStore(open_store(url))
    session = reviews.create_session(reviews.authenticate("li", "longpassword").id)
    short = runner.invoke(cli, ["users", "passwd", "li", "--password-stdin", "--db", url], input="short\n")  # fmt: skip
    assert short.exit_code != 0 and "at least 8" in short.output
    new = runner.invoke(cli, ["users", "passwd", "li", "--password-stdin", "--db", url], input="a new password\n")  # fmt: skip
    assert new.exit_code == 0, new.output
    assert reviews.authenticate("li", "a new password") is not None
    assert reviews.session_user(session) is None  # signed out everywhere
    dispose_engines()


def test_password_is_stored_as_argon2(env) -> None:
    app, _ = env
    from sqlalchemy import select

    from pipeline.store import models as m

    with app.state.reviews.store.engine.connect() as conn:
        hashes = conn.scalars(select(m.User.password_hash)).all()
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_secret_key_is_generated_once_or_read_from_env(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("QA_SECRET_KEY", raising=False)
    first = secret_key(tmp_path / "var")
    assert first == secret_key(tmp_path / "var") and len(first) >= 40
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0
    assert secret_key(tmp_path / "other") != first
    monkeypatch.setenv("QA_SECRET_KEY", "from-env")
    assert secret_key(tmp_path / "var") == "from-env"
