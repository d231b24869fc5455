"""The review app's reviewer features, server side: zh-CN/en catalogues and language choice,
locale formatting, the timeline, queue order for n/p, queue totals, page size, saved
filters, bulk confirm, search (tokenisation table, agent isolation), transcript-only calls,
failed calls and their re-queue, offline API docs."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from pipeline.app import i18n
from pipeline.app.permissions import scope_of
from pipeline.app.timeline import markers
from pipeline.schema import CallJob, Transcript, Utterance
from pipeline.store.search import fts_query, terms
from tests.builders import (
    OWN,
    PASSWORD,
    csrf_of,
    login,
    make_result,
    queue_ids,
)

LOCALE = Path(i18n.__file__).parent / "locale"
ZH_SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "zh_transcripts"


# --------------------------------------------------------------------------- languages


def test_catalogues_are_complete_and_compiled() -> None:
    """Every source string has a Chinese translation, and the committed .mo matches the .po."""
    with open(LOCALE / "messages.pot", "rb") as fh:
        source = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    with open(LOCALE / "zh_CN" / "LC_MESSAGES" / "messages.po", "rb") as fh:
        po = {_key(m.id): _text(m.string) for m in read_po(fh) if m.id}
    with open(LOCALE / "zh_CN" / "LC_MESSAGES" / "messages.mo", "rb") as fh:
        mo = {_key(m.id): _text(m.string) for m in read_mo(fh) if m.id}
    assert source <= set(po), sorted(source - set(po))
    assert all(po[k] for k in source), [k for k in source if not po[k]]
    assert mo == po


def _key(msgid) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def _text(msgstr) -> str:
    return msgstr if isinstance(msgstr, str) else "|".join(msgstr)


def test_templates_use_only_catalogued_strings() -> None:
    """Every _("...") in the templates and app code is in the extracted catalogue."""
    with open(LOCALE / "messages.pot", "rb") as fh:
        source = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}
    app_dir = LOCALE.parent
    used: set[str] = set()
    for path in [*app_dir.glob("templates/*.html"), *app_dir.rglob("*.py")]:
        text = path.read_text()
        used |= set(re.findall(r'\b_\("((?:[^"\\]|\\.)+)"', text))
        used |= set(re.findall(r"\b_\('((?:[^'\\]|\\.)+)'", text))
    assert used - source - {"..."} == set(), "run make locale"  # "...": a docstring


@pytest.mark.parametrize(
    ("header", "env", "saved", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, None, "zh_CN"),
        ("en-US,en;q=0.9", None, None, "en"),
        ("fr-FR, en;q=0.5, zh;q=0.7", None, None, "zh_CN"),
        ("fr-FR", "en", None, "en"),
        (None, None, None, "zh_CN"),
        (None, "en_US", None, "en"),
        ("zh-TW", None, "en", "en"),
        ("en", "en", "zh_CN", "zh_CN"),
    ],
)
def test_language_choice_order(monkeypatch, header, env, saved, expected) -> None:
    if env:
        monkeypatch.setenv(i18n.LANGUAGE_ENV, env)
    else:
        monkeypatch.delenv(i18n.LANGUAGE_ENV, raising=False)
    assert i18n.choose(saved, header) == expected


def test_pages_follow_the_browser_then_the_users_choice(app) -> None:
    client = login(app, "rev")
    zh = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert '<html lang="zh-CN">' in zh and "质检队列" in zh and "退出登录" in zh
    en = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="en">' in en and "Review queue" in en and "质检队列" not in en
    client.post("/account/language", data={"csrf_token": csrf_of(client, "/"), "language": "en"})
    saved = client.get("/", headers={"Accept-Language": "zh-CN"}).text
    assert '<html lang="en">' in saved and "Review queue" in saved
    call = client.get(f"/calls/{OWN}", headers={"Accept-Language": "zh-CN"}).text
    assert "标准开场白" in call  # the rubric's own title, as written


@pytest.mark.parametrize(
    ("accept", "label", "sort_option"),
    [
        ("zh-CN,zh;q=0.9", "预测客户满意度", "满意度最低"),
        ("en", "Predicted customer satisfaction", "least satisfied"),
    ],
)
def test_call_page_and_queue_show_the_predicted_satisfaction(
    app, accept, label, sort_option
) -> None:
    client = login(app, "rev")
    call = client.get("/calls/c-a1-1", headers={"Accept-Language": accept}).text
    shown = re.search(r'data-testid="satisfaction">([^<]+)<strong>([^<]+)</strong>', call)
    assert shown and shown.group(1).strip() == label and shown.group(2) == "-1.40"
    queue = client.get("/?sort=satisfaction", headers={"Accept-Language": accept}).text
    assert f'<option value="satisfaction" selected>{sort_option}</option>' in queue
    cells = re.findall(r'data-testid="satisfaction"[^>]*>[^<]*?([+-]\d\.\d)</span>', queue)
    assert cells == ["-1.4", "-0.2", "+0.3", "+1.1"]  # least satisfied first


def test_dates_durations_numbers_follow_the_locale(app) -> None:
    client = login(app, "rev")
    zh = client.get(f"/calls/{OWN}", headers={"Accept-Language": "zh-CN"}).text
    en = client.get(f"/calls/{OWN}", headers={"Accept-Language": "en"}).text
    started = re.compile(r'data-testid="started-at">([^<]+)<')
    duration = re.compile(r'data-testid="duration">([^<]+)<')
    assert started.search(zh).group(1) == "2026/11/1 09:00"
    assert started.search(en).group(1) == "11/1/26, 9:00\u202fAM"
    assert duration.search(zh).group(1) == "10秒" and duration.search(en).group(1) == "10 s"
    i18n.activate("zh_CN")
    assert i18n.fmt_duration(3725) == "1小时2分5秒" and i18n.fmt_number(12345.678) == "12,345.68"
    i18n.activate("en")
    assert i18n.fmt_duration(125) == "2 min 5 s"


# --------------------------------------------------------------------------- timeline


def _utt(spk: str, start: float, end: float) -> SimpleNamespace:
    return SimpleNamespace(speaker=spk, start=start, end=end)


MARKER_CASES = [
    # utterances → (kind, start) of the conversation markers
    ([_utt("agent", 0, 2), _utt("customer", 2.5, 4)], []),
    ([_utt("agent", 0, 2), _utt("customer", 19, 21)], [("silence", 2.0)]),
    ([_utt("agent", 4, 6)], [("silence", 0.0)]),
    ([_utt("agent", 0, 5), _utt("customer", 4, 7)], [("overlap", 4.0)]),
    ([_utt("agent", 0, 5), _utt("customer", 4.9, 7)], []),  # 0.1 s: a turn change
    ([_utt("agent", 0, 5), _utt("agent", 4, 7)], []),  # same speaker: not talk-over
]


@pytest.mark.parametrize(("utterances", "expected"), MARKER_CASES)
def test_conversation_markers(utterances, expected) -> None:
    found = [(mk.kind, mk.start) for mk in markers(utterances, [], None)]
    assert found == expected


def test_call_page_timeline_has_lanes_markers_and_peaks(app) -> None:
    client = login(app, "rev")
    page = client.get("/calls/c-a2-1").text
    svg = re.search(r'<svg class="timeline" data-testid="timeline".*?</svg>', page, re.S).group()
    assert svg.count('class="seg lane-agent"') == 3 and svg.count('class="seg lane-customer"') == 2
    kinds = re.findall(
        r'data-testid="timeline-marker" data-kind="(\w+)" data-start="([\d.]+)"', svg
    )
    assert ("rule", "4.5") in kinds  # the failed red line's evidence: "这不归我管"
    assert ("risk", "6.5") in kinds  # "我要投诉"
    assert 'class="wave"' in svg
    cache = Path(app.state.audio_cache)
    peaks = list(cache.glob("*-peaks-*.json"))
    assert len(peaks) == 1 and max(json.loads(peaks[0].read_text())) == 1.0
    stamp = peaks[0].stat().st_mtime_ns
    client.get("/calls/c-a2-1")
    assert peaks[0].stat().st_mtime_ns == stamp  # computed once per call


# --------------------------------------------------------------------------- queue


def test_queue_total_page_size_and_saved_filters(app) -> None:
    client = login(app, "rev")
    page = client.get("/", headers={"Accept-Language": "en"}).text
    assert re.search(r'data-testid="queue-total">4 calls<', page)
    client.post("/account/page-size", data={"csrf_token": csrf_of(client, "/"), "per_page": "20"})
    assert 'value="20" selected' in client.get("/").text
    assert client.post("/account/page-size", data={"csrf_token": csrf_of(client, "/"), "per_page": "7"}).status_code == 400  # fmt: skip
    r = client.post("/filters", data={"csrf_token": csrf_of(client, "/"), "name": "高风险", "query": "risk_level=high&page=3&evil=1"})  # fmt: skip
    assert r.status_code == 303
    (saved,) = app.state.reviews.saved_filters(app.state.reviews.authenticate("rev", PASSWORD).id)
    assert saved.name == "高风险" and saved.query == "risk_level=high"
    assert queue_ids(client, "?" + saved.query) == [OWN]
    other = login(app, "admin")  # saved filters are per user
    assert "高风险" not in other.get("/").text


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"item_failed": "no_forbidden"},
        {"item_failed": "apology", "team": "T1"},
        {"risk_level": "high"},
        {"review_status": "auto"},
        {"review_status": "reviewed"},
        {"review_status": "auto", "item_failed": "no_forbidden", "risk_level": "medium"},
    ],
)
def test_queue_total_counts_what_the_filters_select(app, query) -> None:
    from pipeline.store.review import QueueFilter

    reviews = app.state.reviews
    rev = reviews.authenticate("rev", PASSWORD)
    reviews.confirm(scope_of(rev), "c-a1-2")
    for user in (rev, reviews.authenticate("agent1", PASSWORD)):
        page = reviews.queue(scope_of(user), QueueFilter(**query))
        assert page.total == len(page.rows), (query, user.username)


def test_next_and_previous_follow_the_queue_order_and_filters(app) -> None:
    client = login(app, "rev")
    order = queue_ids(client, "?sort=oldest")
    assert order == ["c-a1-1", "c-a1-2", "c-a2-1", "c-a2-2"]
    page = client.get("/calls/c-a1-2?q=sort%3Doldest&pos=1").text
    assert 'data-next="/calls/c-a2-1?q=sort%3Doldest&amp;pos=2"' in page
    assert 'data-prev="/calls/c-a1-1?q=sort%3Doldest&amp;pos=0"' in page
    filtered = client.get("/calls/c-a2-1?q=sort%3Doldest%26team%3DT2&pos=0").text
    assert 'data-next="/calls/c-a2-2?' in filtered and 'data-prev=""' in filtered


def test_confirm_all_and_next_and_bulk_confirm(app) -> None:
    client = login(app, "rev")
    token = csrf_of(client, "/")
    r = client.post("/calls/c-a1-1/confirm", data={"csrf_token": token, "next": "/calls/c-a1-2?q=&pos=1"})  # fmt: skip
    assert r.headers["location"] == "/calls/c-a1-2?q=&pos=1"
    r = client.post("/queue/confirm", data={"csrf_token": token, "call_id": ["c-a2-1", "c-a2-2", "nope"]})  # fmt: skip
    assert r.status_code == 303
    assert sorted(queue_ids(client, "?review_status=reviewed")) == ["c-a1-1", "c-a2-1", "c-a2-2"]
    agent = login(app, "agent1")
    assert agent.post("/queue/confirm", data={"csrf_token": csrf_of(agent, "/"), "call_id": OWN}).status_code == 403  # fmt: skip


# --------------------------------------------------------------------------- search

TERMS = [
    ("我要投诉", ["我要", "要投", "投诉", "诉"]),
    ("投", ["投"]),
    ("VIP会员 Refund 2次", ["vip", "会员", "员", "refund", "2", "次"]),
    ("，。！", []),
]


@pytest.mark.parametrize(("text", "expected"), TERMS)
def test_chinese_is_indexed_as_bigrams(text, expected) -> None:
    assert terms(text) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("投诉", '"投诉"'),
        ("我要投诉", '"我要 要投 投诉"'),
        ("诉", '"诉"*'),
        ("refund 投诉", '"refund"* AND "投诉"'),
        ('"; DROP', '"drop"*'),
        ("！？", None),
    ],
)
def test_queries_become_phrases(query, expected) -> None:
    assert fts_query(query) == expected


def search_ids(client: TestClient, q: str) -> list[str]:
    html = client.get("/search", params={"q": q}).text
    return sorted(re.findall(r'data-testid="call-row" data-call-id="([^"]+)"', html))


def test_search_finds_what_was_said_and_keeps_agents_apart(app) -> None:
    store = app.state.reviews.store
    said = Transcript(call_id="c-x", language="zh", duration=6.0, utterances=[
        Utterance(speaker="agent", start=0.5, end=2.0, text="您好，请问有什么可以帮您"),
        Utterance(speaker="customer", start=2.5, end=5.0, text="我想办理退款，订单号尾号三七"),
    ])  # fmt: skip
    store.save_scored(CallJob(call_id="c-x", source="x.json", agent_id="A2"), said, make_result("c-x", False, False, "low"))  # fmt: skip
    rev = login(app, "rev")
    assert search_ids(rev, "投诉") == ["c-a1-1", "c-a1-2", "c-a2-1", "c-a2-2"]
    assert search_ids(rev, "退款") == ["c-x"]
    assert search_ids(rev, "办理退款") == ["c-x"]
    assert search_ids(rev, "退") == ["c-x"]
    assert search_ids(rev, "款办") == []  # not adjacent in that order
    assert search_ids(rev, "快递 态度") == ["c-a1-1", "c-a1-2", "c-a2-1", "c-a2-2"]
    assert search_ids(rev, "快递 退款") == []
    hit = rev.get("/search", params={"q": "退款"}).text
    assert "我想办理<mark>退款</mark>，订单号尾号三七" in hit and "#utt-1" in hit
    agent1 = login(app, "agent1")
    assert search_ids(agent1, "投诉") == ["c-a1-1", "c-a1-2"]
    assert search_ids(agent1, "退款") == []  # agent A2's call
    # a call scored later is found without any rebuild
    store.save_scored(CallJob(call_id="c-y", source="y.json", agent_id="A1"), said.model_copy(update={"call_id": "c-y"}), make_result("c-y", False, False, "low"))  # fmt: skip
    assert search_ids(agent1, "退款") == ["c-y"]


# --------------------------------------------------------------------------- every call viewable


def test_transcript_only_calls_show_the_transcript_and_timeline_without_a_player(app) -> None:
    store = app.state.reviews.store
    path = sorted(ZH_SAMPLES.glob("*.json"))[0]
    t = Transcript.model_validate_json(path.read_text())
    store.save_scored(CallJob(call_id="chat-1", source=str(path)), t.model_copy(update={"call_id": "chat-1"}), make_result("chat-1", True, False, "low"))  # fmt: skip
    page = login(app, "rev").get("/calls/chat-1").text
    assert 'data-testid="audio-player"' not in page and 'data-testid="no-audio"' in page
    assert 'data-testid="timeline"' in page and page.count('data-testid="utterance"') == len(t.utterances)  # fmt: skip


def test_admins_see_failed_calls_and_requeue_them(app, tmp_path: Path) -> None:
    store = app.state.reviews.store
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    job = CallJob(call_id="bad-1", source=str(broken))
    store.save_failed(job, "broken.json: not a transcript (line 1)")
    admin = login(app, "admin")
    page = admin.get("/admin/failed").text
    assert 'data-call-id="bad-1"' in page and "not a transcript (line 1)" in page
    assert login(app, "rev").get("/admin/failed").status_code == 403
    good = json.loads(sorted(ZH_SAMPLES.glob("ecom_*.json"))[0].read_text())
    broken.write_text(json.dumps({**good, "call_id": "bad-1"}, ensure_ascii=False))
    r = admin.post("/admin/failed/bad-1/requeue", data={"csrf_token": csrf_of(admin, "/")})
    assert r.status_code == 303
    deadline = time.monotonic() + 60
    while "bad-1" not in queue_ids(admin) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert "bad-1" in queue_ids(admin)
    assert 'data-call-id="bad-1"' not in admin.get("/admin/failed").text
    assert admin.post("/admin/failed/c-a1-1/requeue", data={"csrf_token": csrf_of(admin, "/")}).status_code == 404  # fmt: skip


# --------------------------------------------------------------------------- API docs


def test_api_docs_work_offline(app) -> None:
    client = TestClient(app)
    page = client.get("/api/docs").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(r.startswith("/") for r in refs)
    for ref in refs:
        r = client.get(ref)
        assert r.status_code == 200 and len(r.content) > 100, ref
    assert "SwaggerUIBundle" in client.get("/api/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/api/docs/assets/..%2F..%2Fsecret").status_code == 404
    assert client.get("/openapi.json").json()["paths"]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_sessions_throttling_and_search_on_postgresql(postgres_url: str) -> None:
    """The same store code on PostgreSQL (search through ILIKE over the pg_trgm index)."""
    url = postgres_url
    from pipeline.store import open_store
    from pipeline.store.review import ReviewStore
    from tests.builders import FAST_HASHER, make_transcript

    store = open_store(url)
    for call_id, agent in (("p-1", "A1"), ("p-2", "A2")):
        store.save_scored(CallJob(call_id=call_id, source="x.json", agent_id=agent), make_transcript(call_id), make_result(call_id, False, False, "low"))  # fmt: skip
    reviews = ReviewStore(store, FAST_HASHER)
    rev = reviews.add_user("rev", PASSWORD, "reviewer")
    agent = reviews.add_user("a1", PASSWORD, "agent", "A1")
    token = reviews.create_session(rev.id, "127.0.0.1")
    assert reviews.session_user(token).username == "rev"
    reviews.set_password("rev", "new password 1")
    assert reviews.session_user(token) is None
    reviews.record_login("x", "10.0.0.1", ok=False)
    seen = reviews.login_failures("x", "10.0.0.1", timedelta(minutes=5))
    assert (len(seen.account), len(seen.pair), len(seen.address)) == (1, 1, 1)
    assert reviews.session_owner(token) == rev.id  # ended, still known: its drafts are rev's
    draft = reviews.save_draft(rev.id, {"comment": "typed"})
    assert reviews.take_draft(draft, agent.id) is None and reviews.take_draft(draft, rev.id) is None  # fmt: skip
    draft = reviews.save_draft(rev.id, {"comment": "typed"})
    assert reviews.take_draft(draft, rev.id) == {"comment": "typed"}
    assert sorted(h.call_id for h in reviews.search(scope_of(rev), "投诉").hits) == ["p-1", "p-2"]
    assert [h.call_id for h in reviews.search(scope_of(agent), "我要投诉").hits] == ["p-1"]
    assert reviews.search(scope_of(rev), "投诉快递").hits == []
    with store.engine.connect() as conn:
        indexes = conn.exec_driver_sql("SELECT indexname FROM pg_indexes WHERE tablename = 'search_docs'").scalars().all()  # fmt: skip
    assert "ix_search_docs_text_trgm" in indexes


# --------------------------------------------------------------------------- module layout


def test_only_the_app_assembles_and_the_store_knows_no_roles() -> None:
    """No module imports ``pipeline.app.main`` but the package that exports ``create_app``
    (so no import cycle through it), and nothing in the store imports the app."""
    import ast

    root = Path(__file__).parents[1] / "pipeline"

    def imported(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    importers = {
        str(p.relative_to(root)) for p in root.rglob("*.py") if "pipeline.app.main" in imported(p)
    }
    assert importers == {"app/__init__.py", "app/cli.py"}
    store = [p.name for p in (root / "store").rglob("*.py") if any(n.startswith("pipeline.app") for n in imported(p))]  # fmt: skip
    assert store == []
    assert len(list((root / "app" / "routers").glob("[!_]*.py"))) >= 14  # one per resource
