"""Unredacted transcripts: kept only when configured, only encrypted, in the call's transaction.

The processor runs the real redact stage and the real rubric engine over a sample call into
which a customer speaks a mobile number, an ID number and a spoken-numeral phone number; the
raw bytes of the SQLite files are then searched for that personal data.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from pipeline.config import load_settings
from pipeline.process import CallProcessor
from pipeline.redact.vault import (
    KEEP_ENV,
    KEY_ENV,
    Vault,
    VaultError,
    generate_key,
    key_id,
    reader_from_env,
    vault_from_env,
)
from pipeline.schema import CallJob, Transcript
from pipeline.store import dispose_engines, open_store
from pipeline.store import models as m
from tests.builders import (
    CALL_ID,
    CN_ID,
    ID_ANSWER,
    PERSONAL,
    PHONE,
    SAMPLE,
    SPOKEN_PHONE,
    pii_transcript,
)

TABLES = ("transcripts", "utterances", "results", "item_results", "calls", "failures")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(KEEP_ENV, raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)
    yield
    dispose_engines()


def db_bytes(db: Path) -> bytes:
    """Everything SQLite wrote: the main file plus its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


def needles(text: str) -> list[bytes]:
    """``text`` as it may sit in the file: UTF-8 (text columns) or JSON-escaped (documents)."""
    return [text.encode(), json.dumps(text)[1:-1].encode()]


def table_text(db: Path, table: str) -> str:
    with sqlite3.connect(db) as conn:
        return json.dumps(
            conn.execute(f"SELECT * FROM {table}").fetchall(), ensure_ascii=False, default=str
        )  # noqa: S608


def process(tmp_path: Path) -> tuple[CallProcessor, Path]:
    db = tmp_path / "qa.db"
    settings = load_settings(database_url=f"sqlite:///{db}")
    processor = CallProcessor(settings)
    job = CallJob(
        call_id=CALL_ID,
        source=str(pii_transcript(tmp_path / "call.json")),
        rubric="zh_bank_hotline",
    )
    outcome = processor.process(job)
    assert outcome.status == "scored", outcome
    return processor, db


# --------------------------------------------------------------------------- the vault


def test_seal_and_open_round_trip_and_refuse_other_keys():
    transcript = Transcript.load(SAMPLE)
    key = generate_key()
    vault = Vault(key)
    token = vault.seal(transcript)
    assert b"\xe5" not in token and "欢迎".encode() not in token  # ciphertext, not the text
    assert vault.open(token) == transcript
    assert Vault(key.encode()).open(token) == transcript
    with pytest.raises(VaultError, match=f"{KEY_ENV}.*another key"):
        Vault(generate_key()).open(token)
    tampered = bytearray(token)
    tampered[40] ^= 1
    with pytest.raises(VaultError, match="altered"):
        vault.open(bytes(tampered))
    assert vault.key_id == key_id(key) != Vault(generate_key()).key_id
    assert key not in repr(vault)


@pytest.mark.parametrize(
    ("env", "keeps"),
    [
        ({}, False),
        ({KEEP_ENV: "0"}, False),
        ({KEEP_ENV: "false", KEY_ENV: "ignored when not keeping"}, False),
        ({KEEP_ENV: "1", KEY_ENV: Fernet.generate_key().decode()}, True),
        ({KEEP_ENV: "yes", KEY_ENV: Fernet.generate_key().decode()}, True),
    ],
)
def test_vault_from_env(env, keeps):
    assert (vault_from_env(env) is not None) is keeps


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({KEEP_ENV: "1"}, f"{KEY_ENV} is not set"),
        ({KEEP_ENV: "1", KEY_ENV: "  "}, f"{KEY_ENV} is not set"),
        ({KEEP_ENV: "1", KEY_ENV: "hunter2"}, f"{KEY_ENV} is not a Fernet key"),
        ({KEEP_ENV: "maybe"}, f"{KEEP_ENV}='maybe'"),
    ],
)
def test_vault_from_env_refuses_bad_settings(env, error):
    with pytest.raises(VaultError, match=error):
        vault_from_env(env)


def test_reader_needs_only_the_key():
    assert reader_from_env({}) is None
    assert isinstance(reader_from_env({KEY_ENV: generate_key()}), Vault)


def test_processor_refuses_to_keep_without_a_key(monkeypatch, tmp_path):
    monkeypatch.setenv(KEEP_ENV, "1")
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}")
    with pytest.raises(VaultError, match=f"{KEEP_ENV}=1.*{KEY_ENV} is not set"):
        CallProcessor(settings)


# --------------------------------------------------------------------------- the pipeline


def test_without_the_setting_no_personal_data_is_stored(tmp_path):
    processor, db = process(tmp_path)
    stored = processor.store.get_transcript(CALL_ID)
    assert "[手机号]" in stored.utterances[-2].text and "[身份证]" in stored.utterances[-2].text
    assert stored.utterances[-3].text == "[身份证]。"  # the answer to the agent's request
    assert not processor.store.has_unredacted(CALL_ID)
    assert processor.store.get_unredacted(CALL_ID, generate_key()) is None
    raw = db_bytes(db)
    assert "[身份证]".encode() in raw  # the search does find what is stored
    for value in PERSONAL:
        for needle in needles(value):
            assert needle not in raw, f"{value!r} stored as {needle!r}"
    for table in (*TABLES, "unredacted_transcripts"):
        dumped = table_text(db, table)
        assert not any(value in dumped for value in PERSONAL), table
    assert table_text(db, "unredacted_transcripts") == "[]"


def test_with_the_setting_the_original_is_kept_encrypted(monkeypatch, tmp_path):
    key = generate_key()
    monkeypatch.setenv(KEEP_ENV, "1")
    monkeypatch.setenv(KEY_ENV, key)
    processor, db = process(tmp_path)
    store = processor.store
    assert store.has_unredacted(CALL_ID)
    original = store.get_unredacted(CALL_ID, key)
    assert PHONE in original.utterances[-2].text and CN_ID in original.utterances[-2].text
    assert original.utterances[-1].text.endswith(SPOKEN_PHONE)
    assert original.utterances[-3].text == f"{ID_ANSWER}。"
    assert original.redactions is None
    assert store.get_unredacted(CALL_ID, Vault(key)) == original
    assert "[手机号]" in store.get_transcript(CALL_ID).utterances[-2].text  # what others see
    with pytest.raises(VaultError, match="key id"):
        store.get_unredacted(CALL_ID, generate_key())
    raw = db_bytes(db)
    for value in PERSONAL:
        for needle in needles(value):
            assert needle not in raw, f"{value!r} stored as {needle!r}"

    # A rerun that skips the call keeps the one copy; nothing is written twice.
    again = CallProcessor(processor.settings)
    job = CallJob(call_id=CALL_ID, source=str(tmp_path / "call.json"), rubric="zh_bank_hotline")
    assert again.process(job).status == "skipped"
    assert len(json.loads(table_text(db, "unredacted_transcripts"))) == 1


def test_unredacted_copy_is_saved_in_the_same_transaction(tmp_path):
    """A failure while keeping the copy leaves no scored call behind, and vice versa."""
    store = open_store(f"sqlite:///{tmp_path / 'qa.db'}")
    processor = CallProcessor(load_settings(database_url=store.engine.url.render_as_string()))
    job = CallJob(
        call_id=CALL_ID,
        source=str(pii_transcript(tmp_path / "call.json")),
        rubric="zh_bank_hotline",
    )
    transcript, result = processor.analyse(job)
    with pytest.raises(TypeError):
        store.save_scored(job, transcript, result, unredacted="not bytes")  # type: ignore[arg-type]
    assert store.list_calls() == []

    vault = Vault(generate_key())
    original = Transcript.load(tmp_path / "call.json")
    first = store.save_scored(job, transcript, result, unredacted=vault.seal(original), key_id=vault.key_id)  # fmt: skip
    assert store.save_scored(job, transcript, result) == first  # the old signature still works
    assert store.get_unredacted(CALL_ID, vault) == original
    with store.session("test") as s:
        kept = s.query(m.UnredactedTranscript).one()
        assert kept.key_id == vault.key_id
        assert kept.transcript_id == s.get(m.Result, first).transcript_id
