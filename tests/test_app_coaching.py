"""The review app's coaching-pack download and its "show personal data" toggle.

Coaching: the real archive of tests/test_coaching.py (stereo WAVs scored by the real rubric
engine) behind the app; the .zip is opened and checked. Personal data: a call processed by
the real pipeline with ``QA_KEEP_UNREDACTED`` on, then every role tries to reveal it.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline.app import create_app
from pipeline.config import load_settings
from pipeline.process import CallProcessor
from pipeline.redact.vault import KEEP_ENV, KEY_ENV, generate_key
from pipeline.schema import CallJob
from pipeline.store import dispose_engines, open_store
from pipeline.store.review import ReviewStore
from tests.builders import (
    CALL_ID,
    CN_ID,
    FAST_HASHER,
    PASSWORD,
    PHONE,
    SPOKEN_PHONE,
    USERS,
    build_archive,
    csrf_of,
    login,
    pii_transcript,
)

ROLES = ("admin", "rev", "trainer", "agent1")


def add_users(url: str) -> None:
    reviews = ReviewStore(open_store(url), FAST_HASHER)
    for name, (role, agent_id) in USERS.items():
        reviews.add_user(name, PASSWORD, role, agent_id)


@pytest.fixture(scope="module")
def coach_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("coach")
    archive = build_archive(root)
    add_users(archive.url)
    yield create_app(archive.url, var_dir=root / "var", secret_key="test-secret"), archive
    dispose_engines()


# --------------------------------------------------------------------------- coaching


@pytest.mark.parametrize(("who", "status"), [("admin", 200), ("rev", 200), ("trainer", 200), ("agent1", 403)])  # fmt: skip
def test_coaching_is_for_trainers_reviewers_and_admins(coach_app, who, status):
    app, _ = coach_app
    client = login(app, who)
    assert client.get("/coaching").status_code == status
    assert client.get("/coaching/pack.zip").status_code == status
    assert ('href="/coaching"' in client.get("/").text) is (status == 200)  # the nav link


def test_anonymous_users_are_sent_to_login(coach_app):
    app, _ = coach_app
    r = TestClient(app, follow_redirects=False).get("/coaching/pack.zip")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_trainer_downloads_a_pack_that_opens(coach_app):
    app, archive = coach_app
    client = login(app, "trainer")
    form = client.get("/coaching").text
    assert 'action="/coaching/pack.zip"' in form and 'value="A1"' in form  # agents offered
    r = client.get("/coaching/pack.zip", params={"item": "greeting", "agent": "", "limit": "5"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    names = set(zf.namelist())
    assert {"index.html", "manifest.json", "pack.json"} <= names
    entries = json.loads(zf.read("manifest.json"))
    assert entries and all(e["item"] == "greeting" for e in entries)
    assert {e["call_id"] for e in entries} == {"c2"}  # the one call without the greeting
    for e in entries:
        assert e["clip"] in names and zf.read(e["clip"])[:4] == b"RIFF"
    assert zf.testzip() is None
    assert "greeting" in zf.read("index.html").decode()


def test_pack_follows_the_filters(coach_app):
    app, _ = coach_app
    client = login(app, "rev")
    everything = client.get("/coaching/pack.zip")
    entries = json.loads(zipfile.ZipFile(io.BytesIO(everything.content)).read("manifest.json"))
    assert len({e["item"] for e in entries}) > 1
    one = client.get("/coaching/pack.zip", params={"limit": "1", "team": "South"})
    entries = json.loads(zipfile.ZipFile(io.BytesIO(one.content)).read("manifest.json"))
    assert len(entries) == 1 and entries[0]["agent_id"] == "A2"


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"item": "no_such_item"}, 400, "no_such_item"),
        ({"since": "2030-01-01"}, 404, "No failed items match"),
        ({"limit": "0"}, 400, "bad filter limit"),
        ({"since": "yesterday"}, 400, "bad filter since"),
    ],
)
def test_bad_or_empty_filters_say_why(coach_app, params, status, message):
    app, _ = coach_app
    r = login(app, "trainer").get(
        "/coaching/pack.zip", params=params, headers={"Accept-Language": "en"}
    )
    assert r.status_code == status and message in r.text


# --------------------------------------------------------------------------- personal data


@pytest.fixture(scope="module")
def pii_template(tmp_path_factory) -> tuple[Path, str]:
    """A store with CALL_ID kept unredacted and "plain" processed without the setting."""
    root = tmp_path_factory.mktemp("pii")
    key = generate_key()
    url = f"sqlite:///{root / 'qa.db'}"
    source = pii_transcript(root / "call.json")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEEP_ENV, "1")
        mp.setenv(KEY_ENV, key)
        job = CallJob(call_id=CALL_ID, source=str(source), rubric="zh_bank_hotline", agent_id="A1")
        processor = CallProcessor(load_settings(database_url=url))
        assert processor.process(job).status == "scored"
        mp.setenv(KEEP_ENV, "0")
        plain = job.model_copy(update={"call_id": "plain"})
        assert CallProcessor(load_settings(database_url=url)).process(plain).status == "scored"
    add_users(url)
    dispose_engines()  # checkpoint the WAL into qa.db before it is copied
    return root, key


@pytest.fixture()
def pii_app(pii_template, tmp_path, monkeypatch):
    root, key = pii_template
    shutil.copy(root / "qa.db", tmp_path / "qa.db")
    monkeypatch.delenv(KEEP_ENV, raising=False)  # the app needs only the key
    monkeypatch.setenv(KEY_ENV, key)
    yield create_app(f"sqlite:///{tmp_path / 'qa.db'}", var_dir=tmp_path / "var", secret_key="s")
    dispose_engines()


def reveal(client: TestClient, call_id: str = CALL_ID):
    token = csrf_of(client, "/")
    return client.post(f"/calls/{call_id}/personal-data", data={"csrf_token": token})


def shows_personal_data(html: str) -> bool:
    return any(value in html for value in (PHONE, CN_ID, SPOKEN_PHONE))


@pytest.mark.parametrize(("who", "status"), [("admin", 200), ("rev", 200), ("trainer", 403), ("agent1", 403)])  # fmt: skip
def test_only_reviewers_and_admins_may_reveal(pii_app, who, status):
    client = login(pii_app, who)
    page = client.get(f"/calls/{CALL_ID}").text
    assert "[手机号]" in page and not shows_personal_data(page)  # redacted by default
    assert ('data-testid="show-pii"' in page) is (status == 200)
    r = reveal(client)
    assert r.status_code == status
    assert shows_personal_data(r.text) is (status == 200)
    assert len(pii_app.state.reviews.store.reveals(CALL_ID)) == (status == 200)


def test_each_reveal_is_audited_and_never_cached(pii_app):
    store = pii_app.state.reviews.store
    client = login(pii_app, "rev")
    r = reveal(client)
    assert r.status_code == 200 and PHONE in r.text and CN_ID in r.text
    assert r.headers["cache-control"] == "no-store"
    assert 'data-testid="pii-shown"' in r.text and 'data-testid="hide-pii"' in r.text
    reveal(login(pii_app, "admin"))
    rows = store.reveals(CALL_ID)
    assert [(row["user"], row["role"]) for row in rows] == [("rev", "reviewer"), ("admin", "admin")]
    assert all(row["created_at"] for row in rows)
    assert store.reveals("plain") == []
    hidden = client.get(f"/calls/{CALL_ID}")  # the toggle back: the redacted page again
    assert not shows_personal_data(hidden.text) and hidden.text.count('data-testid="pii-reveal"') == 2  # fmt: skip


def test_reveal_needs_csrf_a_kept_copy_and_the_key(pii_app, monkeypatch):
    client = login(pii_app, "rev")
    r = client.post(f"/calls/{CALL_ID}/personal-data", data={"csrf_token": "forged"})
    assert r.status_code == 403 and not shows_personal_data(r.text)
    r = reveal(client, "plain")  # processed without QA_KEEP_UNREDACTED
    assert r.status_code == 404 and KEEP_ENV in r.text
    assert 'data-testid="show-pii"' not in client.get("/calls/plain").text
    assert reveal(client, "no-such-call").status_code == 404
    monkeypatch.setenv(KEY_ENV, generate_key())
    r = reveal(client)
    assert r.status_code == 503 and "key id" in r.text and not shows_personal_data(r.text)
    monkeypatch.delenv(KEY_ENV)
    r = reveal(client)
    assert r.status_code == 503 and KEY_ENV in r.text
    assert pii_app.state.reviews.store.reveals(CALL_ID) == []  # nothing shown, nothing logged


# --------------------------------------------------------------------------- no agent metadata

ZH_SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "zh_transcripts"


def test_coaching_export_with_calls_without_agent_metadata(tmp_path: Path) -> None:
    """Text transcripts carry no agent metadata; next to calls that do, pandas' string
    columns hold NaN for them, which once failed the export (ContrastExample agent_id=nan)."""
    from pipeline.reports import CoachFilter, export_coaching_pack

    url = f"sqlite:///{tmp_path / 'qa.db'}"
    processor = CallProcessor(load_settings(database_url=url))
    for n, path in enumerate(sorted(ZH_SAMPLES.glob("ecom_*.json"))):
        agent = {"agent_id": "A7", "agent_name": "王芳"} if n == 0 else {}
        outcome = processor.process(CallJob(call_id=path.stem, source=str(path), **agent))
        assert outcome.status == "scored", outcome.error
    store = open_store(url)
    manifest = export_coaching_pack(store, tmp_path / "pack", CoachFilter())
    assert manifest.entries, "the samples fail some items"
    with_contrast = [e for e in manifest.entries if e.contrast is not None]
    assert with_contrast, "a passed example from another call exists"
    for entry in manifest.entries:
        assert entry.agent_id in (None, "A7")
        assert entry.contrast is None or entry.contrast.agent_id in (None, "A7")
    assert any(e.contrast.agent_id is None for e in with_contrast) or any(
        e.agent_id is None for e in manifest.entries
    )
    dispose_engines()
