"""Scoring configuration end to end: routing, re-scoring stored calls, carried verdicts, history.

The flow the issue checks: run an archive (the Chinese sample transcripts), bump a form's
version and change an item's points, ``callqa rescore --rubric NEW.yaml``: every call of
that form moves to the new version and maximum, the old result stays, no transcript is
made again. Runs on SQLite and on the PostgreSQL server at 127.0.0.1:5432.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from pipeline.archive import discover
from pipeline.cli import cli
from pipeline.config import load_settings
from pipeline.process import CallProcessor
from pipeline.rescore import RescoreError, Rescorer
from pipeline.routing import RoutingError, load_routing
from pipeline.schema import CallJob, ScoringConfig, canonical_sha256
from pipeline.scripts_check import load_rubric
from pipeline.store import dispose_engines, open_store
from pipeline.store import models as m
from pipeline.store.review import ReviewStore, Scope
from tests.builders import PG_SERVER

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "samples" / "zh_transcripts"
BANK = {"bank_001_compliant", "bank_002_missing_greeting", "bank_003_forbidden"}
ECOM = {"ecom_001_compliant_asr", "ecom_002_missing_closing"}


def sample_archive(parent: Path) -> Path:
    """The Chinese sample transcripts in ``parent/archive``, no manifest: the routing table
    picks each form."""
    folder = parent / "archive"
    folder.mkdir()
    for path in ZH.glob("*.json"):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture()
def archive(tmp_path) -> Path:
    return sample_archive(tmp_path)


def run_archive(store_url: str, archive: Path, **settings) -> CallProcessor:
    processor = CallProcessor(load_settings(database_url=store_url, **settings))
    for job in discover(archive):
        assert processor.process(job).status == "scored", job.call_id
    return processor


@pytest.fixture(scope="module")
def scored_sqlite(tmp_path_factory) -> Path:
    """The sample transcripts run once into a SQLite file; tests on SQLite start from a copy."""
    folder = tmp_path_factory.mktemp("scored")
    run_archive(f"sqlite:///{folder / 'qa.db'}", sample_archive(folder))
    dispose_engines()
    return folder / "qa.db"


@pytest.fixture(scope="module")
def scored_postgres(pg_admin, tmp_path_factory):
    """The sample transcripts run once into a PostgreSQL database; tests on PostgreSQL start
    from a copy (``CREATE DATABASE ... TEMPLATE``). Its name; dropped after the module."""
    name = f"callqa_test_rescore_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(f'CREATE DATABASE "{name}"')
    run_archive(f"{PG_SERVER}/{name}", sample_archive(tmp_path_factory.mktemp("scored_pg")))
    dispose_engines()  # a template database takes no connections while it is copied
    yield name
    dispose_engines()
    pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def scored(request, store_url, scored_sqlite, tmp_path):
    """A store holding the sample transcripts as ``callqa run`` scores them."""
    if store_url.startswith("sqlite"):
        shutil.copy(scored_sqlite, tmp_path / "qa.db")
        return open_store(store_url)
    template = request.getfixturevalue("scored_postgres")
    pg_admin = request.getfixturevalue("pg_admin")
    database = store_url.rsplit("/", 1)[1]
    dispose_engines()
    pg_admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    pg_admin.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template}"')
    return open_store(store_url)


def new_form(tmp_path: Path, rubric_id: str, *, points: float = 5, phrase: str | None = None):
    """A new version of a shipped form: version + 1, its first item worth ``points`` more
    (and, with ``phrase``, that item's check asks for another phrase)."""
    data = yaml.safe_load((ROOT / "rubrics" / f"{rubric_id}.yaml").read_text("utf-8"))
    data["version"] = int(data["version"]) + 1
    item = data["sections"][0]["items"][0]
    item["points"] += points
    if phrase is not None:
        check = item["check"]
        required = check["required"] if "required" in check else check["any_of"][0]["required"]
        required["phrases"] = [phrase]
    path = tmp_path / f"{rubric_id}_v{data['version']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path, data, item["id"]


def calls_json(store_url: str) -> dict[str, dict]:
    out = CliRunner().invoke(cli, ["calls", "--db", store_url, "--json"])
    assert out.exit_code == 0, out.output
    return {r["call_id"]: r for r in json.loads(out.stdout)}


def count(store, model) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


# --------------------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("job", "language", "setting", "rule", "rubric"),
    [
        (CallJob(call_id="bank_009", source=""), "zh", None, "table", "zh_bank_hotline"),
        (CallJob(call_id="BANK_009", source=""), "zh", None, "table", "zh_bank_hotline"),
        (CallJob(call_id="ecom_1", source=""), "zh", None, "table", "zh_ecommerce"),
        (CallJob(call_id="x1", source=""), "zh", None, "language", "zh_ecommerce"),
        (CallJob(call_id="x1", source=""), "en-US", None, "language", "en_telecom"),
        (CallJob(call_id="bank_1", source=""), "en", None, "language", "en_telecom"),
        (CallJob(call_id="x", source="", rubric="zh_bank_hotline"), "zh", None, "manifest",
         "zh_bank_hotline"),
        (CallJob(call_id="bank_1", source="", rubric="zh_ecommerce"), "zh", "en_telecom",
         "setting", "en_telecom"),
    ],
)  # fmt: skip
def test_shipped_routing_table(job, language, setting, rule, rubric) -> None:
    route = load_routing().route(job, language, setting)
    assert (route.rule, route.rubric) == (rule, rubric)
    if rule in ("table", "language"):
        assert route.table_sha256 and len(route.table_sha256) == 64


def test_routing_order_team_before_direction_and_unknown_language(tmp_path) -> None:
    table = tmp_path / "routing.yaml"
    table.write_text(
        "version: 1\nroutes:\n"
        "  - {match: {team: Cards, queue: vip}, rubric: zh_bank_hotline}\n"
        "  - {match: {direction: outbound, agent_group: G2}, rubric: en_telecom}\n"
        "  - {match: {language: zh}, rubric: zh_ecommerce}\n"
        "defaults: {en: en_telecom}\n",
        encoding="utf-8",
    )
    routing = load_routing(table)
    vip = CallJob(call_id="a", source="", team="cards", queue="VIP", direction="outbound")
    assert routing.route(vip, "zh").row == 0
    out = CallJob(call_id="b", source="", direction="outbound", agent_group="G2")
    assert routing.route(out, None).row == 1  # decided before the language is known
    assert routing.route(CallJob(call_id="c", source=""), None) is None  # needs the language
    assert routing.route(CallJob(call_id="c", source=""), "zh").rubric == "zh_ecommerce"
    with pytest.raises(RoutingError, match="no default"):
        routing.route(CallJob(call_id="d", source=""), "fr")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("version: 1\nroutes: [{match: {colour: red}, rubric: zh_ecommerce}]\n", "routes[0].match"),
        ("version: 1\nroutes: [{match: {}, rubric: zh_ecommerce}]\n", "routes[0].match"),
        ("version: 1\nroutes: [{match: {team: A}, rubric: zh_nonexistent}]\n", "routes[0].rubric"),
        ("version: 1\ndefaults: {zh: nope}\n", "defaults.zh"),
        ("version: 1\nroutes: [{match: {team: A}}]\n", "routes[0]: missing key 'rubric'"),
        ("routes: []\n", "version"),
        ("version: 1\nroutes: [\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_broken_routing_tables_are_rejected_with_file_and_place(tmp_path, text, reason) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RoutingError) as caught:
        load_routing(path)
    assert str(path) in str(caught.value) and reason in str(caught.value)


# --------------------------------------------------------------------------- re-score


def test_rescore_moves_every_call_of_the_form_to_the_new_version(store_url, scored, tmp_path):
    store = scored
    before = calls_json(store_url)
    assert {c for c, r in before.items() if r["rubric_id"] == "zh_bank_hotline"} == BANK
    assert {c for c, r in before.items() if r["rubric_id"] == "zh_ecommerce"} == ECOM
    assert all(r["result_versions"] == 1 for r in before.values())
    results_before = {c: store.get_result(c) for c in before}
    transcripts = count(store, m.Transcript)

    path, data, _ = new_form(tmp_path, "zh_bank_hotline", points=5)
    out = CliRunner().invoke(cli, ["rescore", "--db", store_url, "--rubric", str(path)])
    assert out.exit_code == 0, out.output
    assert "3 re-scored" in out.stdout and "rescore: 5/5 calls" in out.stderr  # progress

    after = calls_json(store_url)
    for call_id in BANK:
        row, old = after[call_id], before[call_id]
        assert row["rubric_version"] == data["version"] and row["result_versions"] == 2
        assert row["max"] == old["max"] + 5  # the new maximum
        history = store.result_history(call_id)
        assert [h["current"] for h in history] == [False, True]
        assert history[0]["total"] == old["total"]  # the old result is kept as it was
        paths = {c["path"] for c in history[1]["changes"]}
        assert {"rubric.version", "rubric.sha256"} <= paths
        assert not any(p.startswith(("asr", "diarizer", "redaction")) for p in paths)
        new = store.get_result(call_id)
        assert new.produced_by.rubric_route.rule == "setting"
        assert new.produced_by.fingerprint == new.produced_by.config.fingerprint()
        # the same stored transcript, hashed the one canonical way
        assert new.produced_by.transcript_sha256 == results_before[call_id].produced_by.transcript_sha256  # fmt: skip
        assert history[0]["transcript_id"] == history[1]["transcript_id"]
    for call_id in ECOM:  # another form: untouched
        assert after[call_id] == before[call_id]
    assert count(store, m.Transcript) == transcripts  # nothing transcribed again

    # the same again: nothing changes
    summary = Rescorer(store, rubric=str(path)).rescore()
    assert (summary.rescored, summary.unchanged, summary.other_form) == (0, 3, 2)
    assert calls_json(store_url) == after


def test_transcript_hash_of_result_and_store_agree(scored) -> None:
    store = scored
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(m.Transcript.id, m.Transcript.sha256)).all())
    for call_id in BANK | ECOM:
        result = store.get_result(call_id)
        transcript = store.get_transcript(call_id)
        assert result.produced_by.transcript_sha256 == canonical_sha256(transcript)
        assert result.produced_by.transcript_sha256 in stored.values()


def test_overrides_carry_over_or_are_flagged_when_the_check_changed(store_url, scored, tmp_path):
    store = scored
    reviews = ReviewStore(store)
    reviews.add_user("rita", "secret-pass-1", role="reviewer")
    rita = Scope(user_id=reviews.authenticate("rita", "secret-pass-1").id, all_calls=True)
    call_id = "bank_002_missing_greeting"
    items = {i.id: i for i in reviews.final_score(rita, call_id).items}
    flipped = next(i for i in items.values() if i.id != "greeting" and i.machine_passed)
    assert items["greeting"].machine_passed is False
    reviews.override(rita, call_id, items["greeting"].item_result_id, True, "greeting was said")
    reviews.override(rita, call_id, flipped.item_result_id, False, "second look")

    # points change only: both verdicts carry over to the new version
    path, data, first = new_form(tmp_path, "zh_bank_hotline", points=5)
    assert first == "greeting"
    assert Rescorer(store, rubric=str(path), risk=False).rescore(call_ids=[call_id]).rescored == 1
    final = reviews.final_score(rita, call_id)
    got = {i.id: i for i in final.items}
    assert got["greeting"].overridden and got["greeting"].passed is True
    assert got[flipped.id].passed is (not flipped.machine_passed)
    assert final.review_status == "reviewed"
    audit = reviews.audit(rita, call_id)
    carried = [a for a in audit if a.carried_from]
    assert len(carried) == 2 and {a.result_id for a in carried} == {final.result_id}
    assert {a.comment for a in carried} == {"greeting was said", "second look"}

    # the greeting's check changes: its verdict is not carried, the item goes to review
    (tmp_path / "v2").mkdir()
    path2, _, _ = new_form(tmp_path / "v2", "zh_bank_hotline", points=7, phrase="欢迎致电华信银行")
    assert Rescorer(store, rubric=str(path2), risk=False).rescore(call_ids=[call_id]).rescored == 1
    final = reviews.final_score(rita, call_id)
    got = {i.id: i for i in final.items}
    assert not got["greeting"].overridden and got["greeting"].needs_review
    assert "different check" in got["greeting"].reason
    assert got[flipped.id].overridden  # unchanged check: still carried
    assert store.get_result(call_id).needs_review

    # the history lists every version and every human action
    out = CliRunner().invoke(cli, ["calls", "show", call_id, "--db", store_url, "--json"])
    assert out.exit_code == 0, out.output
    history = json.loads(out.stdout)
    assert history["result_versions"] == 3 and len(history["results"]) == 3
    assert len(history["actions"]) == 2 + 2 + 1
    changed = {c["path"] for c in history["results"][1]["changes"]}
    assert {"rubric.version", "risk"} <= changed  # risk left out on this re-score
    text = CliRunner().invoke(cli, ["calls", "show", call_id, "--db", store_url])
    assert "changes from v1" in text.stdout and "carried from action" in text.stdout


def test_rescore_without_rubric_follows_routing_and_selections(store_url, scored, tmp_path):
    store = scored
    rescorer = Rescorer(store, risk=True)
    # nothing changed in the configuration: every call is left alone
    summary = rescorer.rescore()
    assert (summary.selected, summary.unchanged, summary.rescored) == (5, 5, 0)
    # without risk the scoring stage changed: the selected calls get a new version
    summary = Rescorer(store, risk=False).rescore(call_ids=["bank_001_compliant"])
    assert summary.rescored == 1
    assert calls_json(store_url)["bank_001_compliant"]["risk"] is None
    with pytest.raises(RescoreError, match="no scored call 'nope'"):
        Rescorer(store).rescore(call_ids=["nope"])
    with pytest.raises(RescoreError, match="--since"):
        Rescorer(store).rescore(since="yesterday")
    assert Rescorer(store, risk=False).rescore(team="nobody").selected == 0
    # --call with another form's rubric applies it to the named call
    path, _, _ = new_form(tmp_path, "zh_bank_hotline")
    summary = Rescorer(store, rubric=str(path)).rescore(call_ids=["ecom_001_compliant_asr"])
    assert summary.rescored == 1
    assert calls_json(store_url)["ecom_001_compliant_asr"]["rubric_id"] == "zh_bank_hotline"


def test_rescore_dates_and_teams(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'qa.db'}"
    folder = tmp_path / "archive"
    folder.mkdir()
    rows = ["file,call_id,team,started_at"]
    for n, (path, day) in enumerate(zip(sorted(ZH.glob("*.json")), range(1, 6), strict=True)):
        shutil.copy(path, folder / path.name)
        rows.append(f"{path.name},{path.stem},{'A' if n % 2 else 'B'},2026-11-0{day}T10:00:00")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    store = run_archive(url, folder).store
    assert store.rescore_targets(since="2026-11-02", until="2026-11-03T00:00") == [
        "bank_002_missing_greeting"
    ]
    summary = Rescorer(store, risk=False).rescore(since="2026-11-02", until="2026-11-04")
    assert summary.selected == 3  # --until is a whole day
    assert Rescorer(store, risk=False).rescore(team="A").selected == 2
    dispose_engines()


@pytest.mark.slow
def test_rescore_in_two_processes(tmp_path, monkeypatch) -> None:
    import pipeline.rescore as rescore_module

    monkeypatch.setattr(rescore_module, "CHUNK", 2)
    url = f"sqlite:///{tmp_path / 'qa.db'}"
    folder = tmp_path / "archive"
    folder.mkdir()
    for n in range(3):
        for path in ZH.glob("bank_*.json"):
            shutil.copy(path, folder / f"{path.stem}_{n}.json")
    store = run_archive(url, folder).store
    path, data, _ = new_form(tmp_path, "zh_bank_hotline")
    summary = Rescorer(store, rubric=str(path), risk=False).rescore(workers=2)
    assert (summary.selected, summary.rescored, summary.failed) == (9, 9, 0)
    rows = calls_json(url)
    assert all(r["rubric_version"] == data["version"] for r in rows.values())
    assert all(r["result_versions"] == 2 for r in rows.values())
    dispose_engines()


def test_a_broken_new_form_is_rejected_before_anything_changes(store_url, scored, tmp_path):
    store = scored
    before = calls_json(store_url)
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: zh_bank_hotline\nversion: 9\nsections: []\n", encoding="utf-8")
    out = CliRunner().invoke(cli, ["rescore", "--db", store_url, "--rubric", str(broken)])
    assert out.exit_code != 0 and str(broken) in out.stderr
    assert calls_json(store_url) == before
    assert store.list_calls() and count(store, m.Result) == 5


# --------------------------------------------------------------------------- config


def test_processor_records_one_config_and_skips_by_it(tmp_path, archive) -> None:
    url = f"sqlite:///{tmp_path / 'qa.db'}"
    processor = run_archive(url, archive)
    job = next(j for j in discover(archive) if j.call_id == "bank_001_compliant")
    result = processor.store.get_result(job.call_id)
    config = result.produced_by.config
    assert isinstance(config, ScoringConfig) and config.asr is None  # a text transcript
    assert config.rubric.id == "zh_bank_hotline" and config.redaction.recognizers
    assert config.risk is not None and len(config.risk.calibration_sha256) == 64
    plan = processor.plan(job)
    assert plan.work == "skip" and plan.config.fingerprint() == config.fingerprint()
    # a new calibration is a new configuration: the call is scored again
    with_other_risk = config.model_copy(
        update={"risk": config.risk.model_copy(update={"calibration_sha256": "0" * 64})}
    )
    assert with_other_risk.fingerprint() != config.fingerprint()
    assert with_other_risk.stages_changed(config) == ["score"]
    dispose_engines()


def test_a_change_of_the_check_engines_settings_rescores(tmp_path, archive, monkeypatch) -> None:
    # the thresholds, word lists and synonym groups of defaults.yaml decide verdicts as the
    # rubric does: a stored result records them, and a change of them re-scores the call
    from pipeline.audio import file_sha256
    from pipeline.match_config import CHECKS_DEFAULTS
    from pipeline.scripts_check import ENGINE_VERSION

    processor = run_archive(f"sqlite:///{tmp_path / 'qa.db'}", archive)
    job = next(j for j in discover(archive) if j.call_id == "bank_001_compliant")
    config = processor.store.get_result(job.call_id).produced_by.config
    assert config.rubric.checks_sha256 == file_sha256(CHECKS_DEFAULTS)
    assert config.rubric.engine.endswith(f" {ENGINE_VERSION}")
    assert config.rubric.semantic["model"] and 0 < config.rubric.semantic["min_similarity"] < 1
    assert processor.plan(job).work == "skip"

    edited = tmp_path / "defaults.yaml"
    edited.write_text(CHECKS_DEFAULTS.read_text(encoding="utf-8") + "\n# edited\n", "utf-8")
    monkeypatch.setattr("pipeline.match_config.CHECKS_DEFAULTS", edited)
    plan = processor.plan(job)
    assert plan.work == "score" and plan.config.stages_changed(config) == ["score"]
    dispose_engines()


# --------------------------------------------------------------------------- stages (audio)


@pytest.mark.slow
def test_a_form_change_rescores_audio_from_the_stored_transcript(tmp_path) -> None:
    """Real ASR once; then a new form version re-scores without decoding or ASR, and an ASR
    setting change is a new transcript stage."""
    url = f"sqlite:///{tmp_path / 'qa.db'}"
    job = next(j for j in discover(ROOT / "samples" / "archive") if j.call_id == "c01-compliant")
    steps: list[str] = []
    first = CallProcessor(load_settings(database_url=url), hook=lambda s, _: steps.append(s))
    assert first.process(job).status == "scored"
    assert {"decode", "asr", "transcript"} <= set(steps)
    before = first.store.get_result(job.call_id)
    config = before.produced_by.config
    assert config.asr.model == "base" and config.asr.english_model == "tiny.en"  # decoded en
    assert before.produced_by.asr_model == "tiny.en"
    assert config.asr.faster_whisper and config.asr.ctranslate2
    by_model = config.asr.decode["by_model"]  # each model's row of decode_models.yaml
    assert by_model["tiny.en"]["beam_size"] == 3 and by_model["base"]["beam_size"] == 5
    assert config.asr.decode["beam_size"] == by_model["base"]["beam_size"]  # the main model's
    assert config.asr.vad  # VAD options recorded
    assert config.diarizer.backend == "embedded" and config.diarizer.params

    path, data, _ = new_form(tmp_path, "en_telecom", points=5)
    steps.clear()
    second = CallProcessor(
        load_settings(database_url=url, rubric=str(path)), hook=lambda s, _: steps.append(s)
    )
    assert second.process(job).status == "scored"
    assert steps == ["result"]  # no decode, no ASR, no roles: the stored transcript
    after = second.store.get_result(job.call_id)
    assert after.rubric.version == data["version"] and after.max == before.max + 5
    assert after.produced_by.config.stages_changed(config) == ["score"]
    assert after.produced_by.transcript_sha256 == before.produced_by.transcript_sha256
    assert second.process(job).status == "skipped"

    # another decode option is another transcript stage: nothing stored to reuse
    wider = CallProcessor(load_settings(database_url=url, beam_size=2))
    assert wider.plan(job).work == "transcribe"
    assert second.plan(job, check_scored=False).work == "score"
    dispose_engines()


def test_migration_0004_rekeys_stored_transcripts_by_the_canonical_hash(store_url) -> None:
    """A store written before 0004 (transcript hashed with nulls): after the upgrade the row
    has the canonical hash, and saving the same transcript again adds no transcript row."""
    import hashlib

    from alembic import command
    from sqlalchemy import insert

    from pipeline.schema import Result, RubricRef, Transcript, Utterance
    from pipeline.store.db import WRITE_OPTION, alembic_config, get_engine

    engine = get_engine(store_url)
    with engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
        command.upgrade(alembic_config(conn), "0003")
        conn.commit()
    transcript = Transcript(
        call_id="old",
        language="zh",
        utterances=[Utterance(speaker="agent", start=0, end=1, text="您好")],
    )
    document = transcript.model_dump(mode="json")  # nulls included, as 0001-0003 stored it
    old_sha = hashlib.sha256(
        json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    assert old_sha != canonical_sha256(transcript)
    now = m.utcnow()
    with engine.begin() as conn:
        call_pk = conn.execute(
            insert(m.Call.__table__).values(
                call_id="old", status="failed", created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        conn.execute(
            insert(m.Transcript.__table__).values(
                call_pk=call_pk, sha256=old_sha, document=document, created_at=now
            )
        )
    store = open_store(store_url)  # upgrades to head
    with store.engine.connect() as conn:
        assert conn.scalar(select(m.Transcript.sha256)) == canonical_sha256(transcript)
    result = Result(call_id="old", rubric=RubricRef(id="zh_ecommerce", version=1), total=0, max=0)
    store.save_scored(CallJob(call_id="old", source="old.json"), transcript, result)
    assert count(store, m.Transcript) == 1


def test_a_result_from_before_routing_keeps_its_form(tmp_path) -> None:
    """No recorded route (stored before routing, manifest column not kept): the re-score
    keeps the form the call was scored with rather than guessing from the table."""
    from pipeline.schema import Result, RubricRef, Transcript

    store = open_store(f"sqlite:///{tmp_path / 'qa.db'}")
    transcript = Transcript.load(ZH / "ecom_001_compliant_asr.json")
    old = Result(call_id=transcript.call_id, rubric=RubricRef(id="zh_bank_hotline", version=1), total=0, max=0)  # fmt: skip
    store.save_scored(CallJob(call_id=transcript.call_id, source="x.json"), transcript, old)
    assert Rescorer(store, risk=False).rescore().rescored == 1
    new = store.get_result(transcript.call_id)
    assert new.rubric.id == "zh_bank_hotline" and new.produced_by.rubric_route.rule == "stored"
    current = load_rubric("zh_bank_hotline").version
    assert [h["config"]["rubric"]["version"] for h in store.result_history(transcript.call_id)] == [1, current]  # fmt: skip
    dispose_engines()
