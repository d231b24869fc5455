"""The inspection store: migrations, round trips, versioning, atomicity, CLI.

The behaviour tests take the ``store``/``store_url`` fixtures of tests/conftest.py, so each
runs on SQLite and on a fresh database of the PostgreSQL server at 127.0.0.1:5432 (marked
``postgres``); the last tests are PostgreSQL's alone: many writer processes, dropped
connections, a missing database.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from pipeline.cli import cli
from pipeline.schema import (
    AsrConfig,
    CallJob,
    DiarizerConfig,
    Evidence,
    ItemResult,
    Provenance,
    RedactionConfig,
    Result,
    ResultProvenance,
    Risk,
    RiskConfigRef,
    RiskEvidence,
    RubricConfig,
    RubricRef,
    ScoringConfig,
    Transcript,
    Utterance,
    config_diff,
)
from pipeline.store import (
    CALL_COLUMNS,
    Store,
    StoreError,
    StoreUnavailable,
    dispose_engines,
    open_store,
    result_config,
    result_fingerprint,
)
from pipeline.store import models as m

TABLES = {
    "runs",
    "calls",
    "transcripts",
    "utterances",
    "results",
    "item_results",
    "failures",
    "call_leases",  # concurrent runs (migration 0005)
    "call_facts",  # the dashboard's materialised figures (migration 0010)
    "dashboard_days",
    "dashboard_items",
    # review workflow (migration 0002)
    "users",
    "disputes",
    "review_actions",
    "call_reviews",
    # personal data (migration 0003)
    "unredacted_transcripts",
    "pii_reveals",
    # review app (migration 0006)
    "web_sessions",
    "login_attempts",
    "user_prefs",
    "saved_filters",
    "form_drafts",
    "search_docs",
    "webhook_outbox",  # migration 0007
    "user_teams",  # team leads' teams (migration 0009)
    "llm_answers",  # LLM answers cache (migration 0011)
}
# Engine-specific search structures made by migration 0006 outside the models: SQLite's FTS5
# table (and its shadow tables), PostgreSQL's pg_trgm index.
ENGINE_SEARCH_OBJECTS = ("search_fts", "ix_search_docs_text_trgm")


def _engine_search_object(name: str | None) -> bool:
    return bool(name) and name.startswith(ENGINE_SEARCH_OBJECTS)


# --------------------------------------------------------------------------- builders


def make_job(call_id: str, **meta) -> CallJob:
    meta = {"agent_id": "A1001", "agent_name": "王芳", "team": "T1", **meta}
    return CallJob(call_id=call_id, source=f"/archive/{call_id}.wav", started_at="2026-11-01T09:30:00", direction="inbound", **meta)  # fmt: skip


def make_transcript(call_id: str, text: str = "您好，工号一二三四为您服务") -> Transcript:
    return Transcript(
        call_id=call_id,
        language="zh",
        utterances=[
            Utterance(speaker="agent", start=0.4, end=3.1, text=text, confidence=0.91),
            Utterance(speaker="customer", start=3.5, end=6.0, text="我要投诉你们"),
            Utterance(speaker="agent", start=6.2, end=8.0, text="非常抱歉，我马上为您处理"),
        ],
        produced_by=Provenance(asr_model="tiny.en", compute_type="int8", source_sha256="ab" * 32),
    )


def make_result(
    call_id: str,
    *,
    rubric_version: int | str = 3,
    asr_model: str = "tiny.en",
    total: float = 80,
    item_ids: tuple[str, ...] = ("greeting", "no_forbidden", "apology"),
) -> Result:
    items = [
        ItemResult(
            id=item_id,
            section="opening",
            passed=[True, False, None][i % 3],
            points=[10, 0, 0][i % 3],
            max_points=10,
            needs_review=i % 3 == 2,
            evidence=[
                Evidence(
                    utterance=0, start=0.4, end=3.1, text="您好", matched="您好", similarity=0.93
                )
            ],
        )
        for i, item_id in enumerate(item_ids)
    ]
    return Result(
        call_id=call_id,
        rubric=RubricRef(id="zh_ecommerce", version=rubric_version),
        total=total,
        max=100,
        needs_review=True,
        items=items,
        risk=Risk(
            score=0.82,
            level="high",
            evidence=[RiskEvidence(utterance=1, text="我要投诉你们", reason="explicit escalation")],
        ),
        produced_by=ResultProvenance(asr_model=asr_model, compute_type="int8"),
    )


def count(store: Store, model, *where) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model).where(*where))


# --------------------------------------------------------------------------- schema


def test_migrations_create_every_table(store: Store) -> None:
    tables = {t for t in inspect(store.engine).get_table_names() if not _engine_search_object(t)}
    assert tables == TABLES | {"alembic_version"}


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"include_name": lambda name, kind, _parent: not _engine_search_object(name)},
        )
        diff = compare_metadata(context, m.Base.metadata)
    assert diff == []


def test_open_is_idempotent(store_url: str, store: Store) -> None:
    store.save_failed(make_job("c1"), "decode error")
    dispose_engines()  # forget the per-process "already migrated" cache
    again = open_store(store_url)
    assert [r["call_id"] for r in again.list_calls()] == ["c1"]


def test_default_url_is_relative_to_cwd(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QA_DATABASE_URL", raising=False)
    open_store()
    assert (tmp_path / "var" / "callqa.db").is_file()
    monkeypatch.setenv("QA_DATABASE_URL", f"sqlite:///{tmp_path / 'env' / 'x.db'}")
    open_store()
    assert (tmp_path / "env" / "x.db").is_file()
    dispose_engines()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sqlite_connections_are_configured(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("mysql://u@localhost/x", StoreError, "valid: sqlite, postgresql"),
        ("not a url", StoreError, "not a database URL"),
        ("postgresql+psycopg://postgres@127.0.0.1:1/none", StoreUnavailable, "cannot open"),
    ],
)
def test_bad_urls_are_rejected(url: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        open_store(url)


# --------------------------------------------------------------------------- fingerprint


BASE_CONFIG = ScoringConfig(
    asr=AsrConfig(model="tiny.en", compute_type="int8", decode={"beam_size": 5}),
    diarizer=DiarizerConfig(backend="embedded", params={"max_speakers": 4}),
    redaction=RedactionConfig(recognizers={"zh@1": "a" * 64}),
    rubric=RubricConfig(id="zh_ecommerce", version=3, sha256="b" * 64),
    risk=RiskConfigRef(
        id="callqa-risk", version=2, sha256="c" * 64, calibration_version=2,
        calibration_sha256="d" * 64,
    ),
)  # fmt: skip


def _changed(path: str, value) -> ScoringConfig:
    data = BASE_CONFIG.model_dump(mode="json")
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[leaf] = value
    return ScoringConfig.model_validate(data)


@pytest.mark.parametrize(
    ("path", "value", "stage"),
    [
        ("rubric.version", 4, "score"),
        ("rubric.sha256", "f" * 64, "score"),
        ("rubric.id", "en_telecom", "score"),
        ("risk.calibration_sha256", "e" * 64, "score"),
        ("risk.version", 3, "score"),
        ("callqa_version", "9.9.9", "score"),
        ("asr.model", "large-v3", "transcript"),
        ("asr.compute_type", "float16", "transcript"),
        ("asr.decode", {"beam_size": 1}, "transcript"),
        ("asr.ctranslate2", "4.0.0", "transcript"),
        ("diarizer.backend", "pyannote", "transcript"),
        ("diarizer.params", {"max_speakers": 2}, "transcript"),
        ("redaction.recognizers", {"zh@2": "a" * 64}, "transcript"),
    ],
)
def test_fingerprint_and_stage_follow_every_part_of_the_config(path, value, stage) -> None:
    changed = _changed(path, value)
    assert changed.fingerprint() != BASE_CONFIG.fingerprint()
    assert changed.stages_changed(BASE_CONFIG) == [stage]
    assert [d["path"] for d in config_diff(BASE_CONFIG.model_dump(), changed.model_dump())] == [
        path
    ] or isinstance(value, dict)


def test_fingerprint_is_stable_and_type_tolerant() -> None:
    assert _changed("rubric.version", 3).fingerprint() == BASE_CONFIG.fingerprint()
    again = ScoringConfig.model_validate_json(BASE_CONFIG.model_dump_json())
    assert again.fingerprint() == BASE_CONFIG.fingerprint()
    assert BASE_CONFIG.stages_changed(again) == []


def test_result_fingerprint_is_the_recorded_config_hash() -> None:
    result = make_result("c1")
    result.produced_by.config = BASE_CONFIG
    assert result_fingerprint(result) == BASE_CONFIG.fingerprint()
    # a Result without a recorded config: the part of it its provenance still tells
    legacy = make_result("c1")
    assert result_fingerprint(legacy) == result_config(legacy).fingerprint()
    assert result_fingerprint(legacy) != result_fingerprint(make_result("c1", rubric_version=4))
    assert result_fingerprint(legacy) != result_fingerprint(make_result("c1", asr_model="base"))


# --------------------------------------------------------------------------- behaviour


def test_save_list_get_round_trip(store: Store) -> None:
    job, transcript, result = make_job("c1"), make_transcript("c1"), make_result("c1")
    run_id = store.start_run("/archive", {"asr_model": "tiny.en", "path": Path("/x")})
    store.save_scored(job, transcript, result, run_id)

    assert store.get_result("c1") == result
    assert store.get_transcript("c1") == transcript
    [row] = store.list_calls()
    assert set(row) == set(CALL_COLUMNS)
    expected = {
        "call_id": "c1",
        "status": "scored",
        "total": 80,
        "max": 100,
        "auto_fail": False,
        "needs_review": True,
        "risk": 0.82,
        "risk_level": "high",
        "agent_id": "A1001",
        "agent_name": "王芳",
        "team": "T1",
        "error": None,
        "rubric_id": "zh_ecommerce",
        "rubric_version": 3,
        "language": "zh",
        "duration": 8.0,
    }
    assert {k: row[k] for k in expected} == expected
    assert count(store, m.Utterance) == 3
    with store.engine.connect() as conn:
        items = conn.execute(
            select(m.ItemResult.item_id, m.ItemResult.passed, m.ItemResult.evidence).order_by(
                m.ItemResult.position
            )
        ).all()
        call = conn.execute(select(m.Call)).one()
    assert [(i.item_id, i.passed) for i in items] == [
        ("greeting", True),
        ("no_forbidden", False),
        ("apology", None),
    ]
    assert items[0].evidence[0]["similarity"] == 0.93
    assert (call.source, call.source_sha256, call.last_run_id) == (
        "/archive/c1.wav",
        "ab" * 32,
        run_id,
    )
    assert store.get_result("nope") is None and store.get_transcript("nope") is None


def test_resave_same_fingerprint_is_idempotent(store: Store) -> None:
    job, transcript, result = make_job("c1"), make_transcript("c1"), make_result("c1")
    first = store.save_scored(job, transcript, result, None)
    second = store.save_scored(job, transcript, result, None)
    assert first == second
    assert [count(store, t) for t in (m.Call, m.Transcript, m.Result, m.ItemResult)] == [1, 1, 1, 3]
    assert store.is_scored("c1", result_fingerprint(result))
    assert not store.is_scored("c1", result_fingerprint(make_result("c1", rubric_version=4)))
    assert not store.is_scored("other", result_fingerprint(result))


def test_new_fingerprint_adds_a_version_and_keeps_the_old(store: Store) -> None:
    job, transcript = make_job("c1"), make_transcript("c1")
    old, new = make_result("c1", total=80), make_result("c1", rubric_version=4, total=60)
    store.save_scored(job, transcript, old, None)
    with store.engine.connect() as conn:
        old_items = conn.execute(select(m.ItemResult.id, m.ItemResult.item_id)).all()
    store.save_scored(job, transcript, new, None)

    assert store.get_result("c1") == new
    assert store.list_calls()[0]["total"] == 60
    history = store.result_history("c1")
    assert [(h["rubric_version"], h["total"], h["current"]) for h in history] == [
        (3, 80, False),
        (4, 60, True),
    ]
    assert count(store, m.Transcript) == 1  # same transcript, shared by both results
    with store.engine.connect() as conn:
        still = conn.execute(
            select(m.ItemResult.id, m.ItemResult.item_id).where(
                m.ItemResult.result_id == history[0]["result_id"]
            )
        ).all()
    assert sorted(still) == sorted(old_items)  # stable keys for later audit rows
    assert store.is_scored("c1", result_fingerprint(new))
    assert not store.is_scored("c1", result_fingerprint(old))


def test_failure_after_success_keeps_the_score(store: Store) -> None:
    result = make_result("c1")
    store.save_scored(make_job("c1"), make_transcript("c1"), result, None)
    run_id = store.start_run("/archive", {})
    store.save_failed(make_job("c1"), "CUDA out of memory", run_id)

    [row] = store.list_calls()
    assert (row["status"], row["total"], row["error"]) == ("scored", 80, None)
    assert store.get_result("c1") == result
    assert [f["error"] for f in store.failures("c1")] == ["CUDA out of memory"]
    assert store.is_scored("c1", result_fingerprint(result))


def test_failed_call_then_scored(store: Store) -> None:
    store.save_failed(make_job("c1", team="T9"), "  ", None)
    [row] = store.list_calls()
    assert (row["status"], row["error"], row["team"], row["total"]) == (
        "failed",
        "unknown error",
        "T9",
        None,
    )
    store.save_failed(make_job("c1"), "audio is empty", None)
    assert store.list_calls(status="failed")[0]["error"] == "audio is empty"

    store.save_scored(make_job("c1"), make_transcript("c1"), make_result("c1"), None)
    [row] = store.list_calls()
    assert (row["status"], row["error"], row["team"]) == ("scored", None, "T1")
    assert store.list_calls(status="failed") == []
    assert len(store.failures("c1")) == 2


def test_failed_save_leaves_nothing_half_written(store: Store) -> None:
    store.save_scored(make_job("ok"), make_transcript("ok"), make_result("ok"), None)
    before = [count(store, t) for t in (m.Call, m.Transcript, m.Utterance, m.Result, m.ItemResult)]

    # Duplicate item ids violate a unique key after the call, transcript, utterances and
    # result rows were written: the whole call must roll back.
    bad = make_result("bad", item_ids=("greeting", "greeting"))
    with pytest.raises(StoreError, match="cannot save call 'bad'"):
        store.save_scored(make_job("bad"), make_transcript("bad"), bad, None)
    after = [count(store, t) for t in (m.Call, m.Transcript, m.Utterance, m.Result, m.ItemResult)]
    assert after == before

    # The same on a call that already has a score: its current result is untouched.
    bad_ok = make_result("ok", rubric_version=9, item_ids=("x", "x"))
    with pytest.raises(StoreError):
        store.save_scored(make_job("ok"), make_transcript("ok", text="changed"), bad_ok, None)
    assert [count(store, t) for t in (m.Call, m.Transcript, m.Result)] == before[:2] + before[3:4]
    assert store.get_result("ok") == make_result("ok")


def test_transcript_without_call_id_takes_the_jobs(store: Store) -> None:
    transcript = make_transcript("c1").model_copy(update={"call_id": ""})
    store.save_scored(make_job("c1"), transcript, make_result("c1"), None)
    assert store.get_transcript("c1") == make_transcript("c1")


def test_mismatched_call_ids_are_rejected(store: Store) -> None:
    with pytest.raises(StoreError, match="result is for call 'b'"):
        store.save_scored(make_job("a"), make_transcript("a"), make_result("b"), None)
    with pytest.raises(StoreError, match="transcript is for call 'b'"):
        store.save_scored(make_job("a"), make_transcript("b"), make_result("a"), None)
    assert count(store, m.Call) == 0


def test_runs_record_settings_and_counts(store: Store) -> None:
    run_id = store.start_run("/archive/2026-11-01", {"asr_model": "tiny.en", "dir": Path("/m")})
    store.save_scored(make_job("c1"), make_transcript("c1"), make_result("c1"), run_id)
    store.save_failed(make_job("c2"), "decode error", run_id)
    store.finish_run(run_id, {"skipped": 4, "note": "nightly"})
    with store.engine.connect() as conn:
        run = conn.execute(select(m.Run)).one()
    assert run.settings == {"asr_model": "tiny.en", "dir": "/m"}
    assert (run.scored, run.failed, run.skipped) == (1, 1, 4)
    assert run.finished_at is not None and run.summary["note"] == "nightly"
    with pytest.raises(StoreError, match="no run with id 999"):
        store.finish_run(999, {})


# --------------------------------------------------------------------------- concurrency


def _writer(url: str, worker: int, calls_each: int, barrier) -> None:
    store = open_store(url)  # several processes migrate the same fresh database at once
    barrier.wait()
    for i in range(calls_each):
        call_id = f"w{worker}-{i}"
        store.save_scored(make_job(call_id), make_transcript(call_id), make_result(call_id), None)
        # every worker saves the same call with the same fingerprint ...
        store.save_scored(
            make_job("shared"), make_transcript("shared"), make_result("shared"), None
        )
    # ... and the same call with a fingerprint of its own
    contended = make_result("contended", rubric_version=worker)
    store.save_scored(make_job("contended"), make_transcript("contended"), contended, None)
    store.save_failed(make_job("shared"), f"worker {worker} failed late", None)


def check_concurrent_writers(url: str, workers: int = 3, calls_each: int = 4) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers, timeout=120)  # a worker that dies must not hang the rest
    procs = [
        ctx.Process(target=_writer, args=(url, w, calls_each, barrier)) for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers

    store = open_store(url)
    rows = {r["call_id"]: r for r in store.list_calls()}
    own = {f"w{w}-{i}" for w in range(workers) for i in range(calls_each)}
    assert set(rows) == own | {"shared", "contended"}
    assert all(rows[c]["status"] == "scored" for c in rows)
    assert count(store, m.Result) == len(own) + 1 + workers
    assert count(store, m.Transcript) == len(own) + 2
    assert len(store.result_history("shared")) == 1
    assert len(store.failures("shared")) == workers
    history = store.result_history("contended")
    assert sorted(h["rubric_version"] for h in history) == list(range(workers))
    assert sum(h["current"] for h in history) == 1


def test_concurrent_writers(store_url: str) -> None:
    check_concurrent_writers(store_url)
    dispose_engines()


# --------------------------------------------------------------------------- CLI


def test_cli_calls_json_and_table(store: Store, store_url: str) -> None:
    store.save_scored(make_job("c1"), make_transcript("c1"), make_result("c1"), None)
    store.save_failed(make_job("c2", agent_id="A2"), "unsupported codec", None)
    runner = CliRunner()

    out = runner.invoke(cli, ["calls", "--db", store_url, "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows == store.list_calls()
    assert [(r["call_id"], r["status"], r["total"], r["error"]) for r in rows] == [
        ("c1", "scored", 80, None),
        ("c2", "failed", None, "unsupported codec"),
    ]

    out = runner.invoke(cli, ["calls", "--db", store_url, "--json", "--status", "failed"])
    assert [r["call_id"] for r in json.loads(out.output)] == ["c2"]

    out = runner.invoke(cli, ["calls", "--db", store_url])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].split()[:3] == ["CALL", "STATUS", "SCORE"]
    assert lines[1].split()[:3] == ["c1", "scored", "80/100"]
    assert "unsupported codec" in lines[2]
    assert lines[-1] == "2 calls: 1 scored, 1 failed"


def test_cli_calls_bad_db_is_one_line_error() -> None:
    out = CliRunner().invoke(cli, ["calls", "--db", "mysql://x/y", "--json"])
    assert out.exit_code == 1
    assert out.output.strip().startswith("callqa: error:")
    assert len(out.output.strip().splitlines()) == 1


def test_leases_failure_rows_and_abandoned_runs(store: Store) -> None:
    """Batch bookkeeping (migration 0005): one claim per call at a time, one failure row per
    unchanged failure, killed runs closed by the next start."""
    import time as _time

    run_a, run_b = store.start_run("a", {}), store.start_run("b", {})
    assert store.claim("c1", run_a, ttl_s=60) and not store.claim("c1", run_b, ttl_s=60)
    assert store.claim("c2", run_b, ttl_s=0.01)
    _time.sleep(0.05)
    assert store.claim("c2", run_a, ttl_s=60)  # expired: taken over
    store.finish_run(run_a, {"scored": 0})  # finishing releases the run's leases
    assert store.claim("c1", run_b, ttl_s=60)

    job = make_job("f1")
    for _ in range(3):
        store.save_failed(job, "decoder error", run_b, source_sha256="aa", config_fingerprint="c")
    assert [f["attempts"] for f in store.failures("f1")] == [3]
    store.save_failed(job, "decoder error", run_b, source_sha256="bb", config_fingerprint="c")
    assert len(store.failures("f1")) == 2
    assert store.unchanged_failure("f1", "bb", "c") == "decoder error"
    assert store.unchanged_failure("f1", "bb", "changed") is None

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    with Session(store.engine) as s, s.begin():  # run b went silent on another host
        s.execute(update(m.Run).where(m.Run.id == run_b).values(host="elsewhere"))
    assert store.close_abandoned_runs(stale_after_s=3600) == []
    assert store.close_abandoned_runs(stale_after_s=0) == [run_b]
    with Session(store.engine) as s:
        closed = s.get(m.Run, run_b)
        assert closed.status == "killed" and closed.failed == 2


# --------------------------------------------------------------------------- PostgreSQL only


@pytest.mark.postgres
def test_many_concurrent_writers(postgres_url: str) -> None:
    check_concurrent_writers(postgres_url, workers=5, calls_each=6)
    dispose_engines()


@pytest.mark.postgres
def test_dropped_connections_are_replaced(pg_admin, postgres_url: str) -> None:
    pg_store = open_store(postgres_url)
    pg_store.save_failed(make_job("c1"), "decode error")
    database = postgres_url.rsplit("/", 1)[1]
    killed = pg_admin.execute(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
        (database,),
    ).fetchone()[0]
    assert killed >= 1  # the pooled connection of the store
    pg_store.save_scored(make_job("c1"), make_transcript("c1"), make_result("c1"), None)
    assert pg_store.list_calls()[0]["status"] == "scored"


@pytest.mark.postgres
def test_missing_database_is_unavailable(postgres_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="cannot open the store"):
        open_store(f"{postgres_url}_missing")
