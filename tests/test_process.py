"""One call end to end without audio: text transcripts through the processor and the flow.

Text transcripts (chat, another ASR) go through the same stages as audio-derived ones, so
these tests exercise discovery, scoring, storage, skipping and failure recording quickly.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.archive import discover
from pipeline.config import load_settings
from pipeline.process import CallProcessor

ROOT = Path(__file__).resolve().parents[1]
ZH = ROOT / "samples" / "zh_transcripts"


@pytest.fixture()
def text_archive(tmp_path) -> Path:
    """The zh sample transcripts plus broken inputs, with a manifest naming each rubric."""
    archive = tmp_path / "archive"
    archive.mkdir()
    expected = yaml.safe_load((ZH / "expected.yaml").read_text(encoding="utf-8"))
    rows = []
    for call_id, exp in expected.items():
        shutil.copy(ZH / f"{call_id}.json", archive / f"{call_id}.json")
        rows.append({"file": f"{call_id}.json", "call_id": call_id, "rubric": exp["rubric"]})
    (archive / "garbled.json").write_text('{"utterances": [', encoding="utf-8")
    (archive / "bad_times.json").write_text(
        json.dumps({"utterances": [{"speaker": "agent", "start": 5, "end": 1, "text": "您好"}]}),
        encoding="utf-8",
    )
    rows += [
        {"file": "garbled.json", "call_id": "garbled", "rubric": "zh_ecommerce"},
        {"file": "bad_times.json", "call_id": "bad_times", "rubric": "zh_ecommerce"},
        {"file": "gone.json", "call_id": "gone", "rubric": "zh_ecommerce"},
        {"file": "bank_001_compliant.json", "call_id": "no_rubric", "rubric": "zh_nonexistent"},
    ]
    with (archive / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "call_id", "rubric"])
        writer.writeheader()
        writer.writerows(rows)
    return archive


FAILURES = {
    "garbled": "not valid JSON",
    "bad_times": "before start",
    "gone": "file not found",
    "no_rubric": "unknown rubric",
}


def test_processor_scores_good_calls_and_records_bad_ones(text_archive, tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}")
    processor = CallProcessor(settings)
    outcomes = {job.call_id: processor.process(job) for job in discover(text_archive)}

    expected = yaml.safe_load((ZH / "expected.yaml").read_text(encoding="utf-8"))
    for call_id, exp in expected.items():
        assert outcomes[call_id].status == "scored", outcomes[call_id]
        assert outcomes[call_id].auto_fail == exp["auto_fail"], call_id
        result = processor.store.get_result(call_id)
        verdicts = {i.id: i.passed for i in result.items}
        for item_id, want in exp.items():
            if item_id not in ("rubric", "auto_fail"):
                want = None if want == "n/a" else want  # not applicable: passed null
                assert verdicts[item_id] == want, (call_id, item_id)
    for call_id, reason in FAILURES.items():
        outcome = outcomes[call_id]
        assert outcome.status == "failed" and reason in outcome.error, outcome
        assert call_id in outcome.error or ".json" in outcome.error  # names the file
    rows = {r["call_id"]: r for r in processor.store.list_calls()}
    assert {c for c, r in rows.items() if r["status"] == "failed"} == set(FAILURES)


def test_rerun_skips_what_is_scored_and_changes_nothing(text_archive, tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}")
    first = CallProcessor(settings)
    jobs = discover(text_archive)
    for job in jobs:
        first.process(job)
    before = first.store.list_calls()

    again = CallProcessor(settings)  # a new worker: nothing cached in memory
    statuses = {job.call_id: again.process(job).status for job in jobs}
    assert {c for c, s in statuses.items() if s == "skipped"} == {
        r["call_id"] for r in before if r["status"] == "scored"
    }
    assert again.store.list_calls() == before


def test_changed_rubric_rescores_and_keeps_history(text_archive, tmp_path):
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}")
    job = next(j for j in discover(text_archive) if j.call_id == "bank_001_compliant")
    CallProcessor(settings).process(job)

    rubric = yaml.safe_load((ROOT / "rubrics" / "zh_bank_hotline.yaml").read_text("utf-8"))
    rubric["version"] = int(rubric["version"]) + 1
    new_rubric = tmp_path / "zh_bank_hotline_v2.yaml"
    new_rubric.write_text(yaml.safe_dump(rubric, allow_unicode=True), encoding="utf-8")
    job.rubric = str(new_rubric)
    processor = CallProcessor(settings)
    assert processor.process(job).status == "scored"
    assert processor.process(job).status == "skipped"
    history = processor.store.result_history("bank_001_compliant")
    assert len(history) == 2
    assert processor.store.get_result("bank_001_compliant").rubric.version == rubric["version"]


@pytest.mark.slow
def test_prefect_flow_wires_the_same_processing(text_archive, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from flows.nightly import build_flow

    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}")
    with prefect_test_harness(server_startup_timeout=180):
        flow = build_flow(max_concurrency=2)
        first = flow(archive=str(text_archive), settings=settings)
        second = flow(archive=str(text_archive), settings=settings)
    assert (first.scored, first.failed, first.skipped) == (5, 4, 0)
    assert (second.scored, second.failed, second.skipped) == (0, 4, 5)
    assert {f["call_id"] for f in first.failures} == set(FAILURES)
    assert first.mean_score_pct is not None and 0 < first.mean_score_pct <= 100


# --------------------------------------------------------------------------- one plan per call


@pytest.fixture()
def reads(monkeypatch) -> dict[str, list[str]]:
    """Every ``Transcript.load`` and every read of a file's content to hash it, by path
    (the call's open file, :class:`pipeline.source.Source`, or ``file_sha256``)."""
    from pipeline import audio
    from pipeline.schema import Transcript
    from pipeline.source import Source

    seen: dict[str, list[str]] = {"load": [], "sha256": []}
    load, sha256, blocks = Transcript.load.__func__, audio.file_sha256, Source._blocks

    def counted_load(cls, path, **kwargs):
        seen["load"].append(str(path))
        return load(cls, path, **kwargs)

    def counted_sha256(path):
        seen["sha256"].append(str(path))
        return sha256(path)

    def counted_blocks(self):
        seen["sha256"].append(self.path)
        return blocks(self)

    monkeypatch.setattr(Transcript, "load", classmethod(counted_load))
    monkeypatch.setattr(audio, "file_sha256", counted_sha256)
    monkeypatch.setattr(Source, "_blocks", counted_blocks)
    return seen


@pytest.mark.parametrize(
    ("call_id", "first", "again"),
    [
        # call -> (status, loads, hashes) of the first run, then of a run with nothing changed
        # (the text is read once from the open file and hashed as it is read)
        ("bank_001_compliant", ("scored", 1, 1), ("skipped", 1, 1)),
        ("garbled", ("failed", 1, 1), ("failed", 1, 1)),  # not retried: unchanged
        ("no_rubric", ("failed", 1, 1), ("failed", 1, 1)),
        ("gone", ("failed", 0, 0), ("failed", 0, 0)),  # tried: neither opens the file
    ],
)
def test_a_text_call_is_read_and_hashed_once(text_archive, tmp_path, reads, call_id, first, again):
    job = next(j for j in discover(text_archive) if j.call_id == call_id)
    processor = CallProcessor(load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}"))
    for status, loads, hashes in (first, again):
        reads["load"].clear(), reads["sha256"].clear()
        outcome = processor.process(job)
        assert outcome.status == status, outcome
        assert reads["load"] == [job.source] * loads
        assert reads["sha256"] == [job.source] * hashes


def test_an_audio_call_is_hashed_once(tmp_path, reads):
    """The plan's hash is the one the decoder records (``source_sha256``): not hashed again."""
    import wave

    import numpy as np

    from pipeline.audio import file_sha256
    from pipeline.schema import CallJob

    path = tmp_path / "hiss.wav"
    noise = np.random.default_rng(0).normal(0, 3000, (32000, 2)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2), out.setsampwidth(2), out.setframerate(16000)
        out.writeframes(noise.tobytes())
    steps: list[str] = []
    processor = CallProcessor(
        load_settings(database_url=f"sqlite:///{tmp_path / 'qa.db'}"),
        hook=lambda step, artefact: steps.append(step),
    )
    outcome = processor.process(CallJob(call_id="hiss", source=str(path), language="en"))
    assert "decode" in steps and reads["load"] == []
    assert reads["sha256"] == [str(path)]
    assert outcome.status == "failed" and "no speech" in outcome.error, outcome
    # the same job (its language known: the multilingual default would detect it otherwise)
    job = CallJob(call_id="hiss", source=str(path), language="en")
    fingerprint = processor.plan(job).fingerprint
    assert processor.store.unchanged_failure("hiss", file_sha256(path), fingerprint)
