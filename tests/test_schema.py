"""Closed contracts: every field callqa writes is declared, and nothing undeclared is kept."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from pipeline.cli import main as callqa
from pipeline.schema import (
    CallJob,
    ContractError,
    Evidence,
    Result,
    Transcript,
    canonical_sha256,
)
from pipeline.schema_cli import contract_models, contract_schema
from pipeline.store.store import open_store
from tests.builders import assert_no_extras, contract_classes

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "zh_transcripts"
ARCHIVE = ROOT / "samples" / "archive"


@pytest.mark.parametrize("name", ["transcript", "result", "rubric"])
def test_every_contract_model_is_closed(name: str) -> None:
    classes = contract_classes(contract_models()[name])
    assert len(classes) > 3
    open_ = sorted(c.__name__ for c in classes if c.model_config.get("extra") != "forbid")
    assert open_ == [], f"models of the {name} contract that keep undeclared fields: {open_}"


@pytest.fixture(scope="module")
def scored_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("scored")
    assert callqa(["score", str(SAMPLES), "--out", str(out)]) == 0
    results = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in out.glob("*.json")}
    assert sorted(results) == sorted(p.stem for p in SAMPLES.glob("*.json"))
    return results


def _check_result_document(raw: dict) -> None:
    result = Result.model_validate(raw)  # extra="forbid": an undeclared field raises
    assert assert_no_extras(result) > 10
    # every field survives the typed round trip, so nothing was written beside the contract
    assert json.loads(result.to_json()) == raw


def test_scored_samples_have_no_extras(scored_samples: dict[str, dict]) -> None:
    for raw in scored_samples.values():
        _check_result_document(raw)
    # the fields that used to be undeclared are now typed, and are written
    bank = Result.model_validate(scored_samples["bank_001_compliant"])
    assert bank.sections and bank.language == "zh" and bank.produced_by.rubric.id == bank.rubric.id
    assert any(e.span_chars for i in bank.items for e in i.evidence)
    assert all(i.check for i in bank.items)


def test_sample_transcripts_have_no_extras() -> None:
    for path in sorted(SAMPLES.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        transcript = Transcript.load(path)
        assert assert_no_extras(transcript) >= 1 + len(raw["utterances"])


def test_scored_samples_match_the_printed_json_schema(scored_samples: dict[str, dict]) -> None:
    printed = {}
    for name in ("transcript", "result", "rubric"):
        out = _run_cli(["schema", name])
        printed[name] = json.loads(out)
        assert printed[name] == contract_schema(name)
        jsonschema.Draft202012Validator.check_schema(printed[name])
    for raw in scored_samples.values():
        jsonschema.validate(raw, printed["result"])
        bad = {**raw, "sectoins": []}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, printed["result"])
    for path in SAMPLES.glob("*.json"):
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), printed["transcript"])


def test_stored_result_reads_back_closed_and_matches_the_schema(
    scored_samples: dict[str, dict], tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'qa.db'}")
    raw = scored_samples["bank_003_forbidden"]
    transcript = Transcript.load(SAMPLES / "bank_003_forbidden.json")
    job = CallJob(call_id=raw["call_id"], source=str(SAMPLES / "bank_003_forbidden.json"))
    store.save_scored(job, transcript, Result.model_validate(raw))
    stored = store.get_result(raw["call_id"])
    assert assert_no_extras(stored) > 10
    jsonschema.validate(json.loads(stored.to_json()), contract_schema("result"))
    back = store.get_transcript(raw["call_id"])
    assert canonical_sha256(back) == canonical_sha256(transcript)


def test_result_written_before_the_contract_closed_still_loads(
    scored_samples: dict[str, dict],
) -> None:
    """Fields that used to ride along undeclared have the same names and JSON shapes."""
    raw = scored_samples["ecom_002_missing_closing"]
    for key in ("sections", "auto_fail_items", "language"):
        assert key in raw
    assert isinstance(raw["produced_by"]["rubric"], dict) and "scorer" in raw["produced_by"]
    assert (
        Result.model_validate(json.loads(json.dumps(raw))).model_dump(
            mode="json", exclude_none=True
        )
        == raw
    )


UNKNOWN_FIELDS = [
    # (where the misspelt field goes, the path the error must name)
    (lambda d: d.update(langauge="zh"), "(top level): unknown key 'langauge'"),
    (lambda d: d["utterances"][0].update(speeker="agent"), "utterances[0]: unknown key 'speeker'"),
    (
        lambda d: d.setdefault("produced_by", {}).update(asr_modle="x"),
        "produced_by: unknown key 'asr_modle'",
    ),
]


@pytest.mark.parametrize("mutate, where", UNKNOWN_FIELDS)
def test_misspelt_transcript_field_is_rejected_with_its_path(tmp_path: Path, mutate, where) -> None:
    data = json.loads((SAMPLES / "bank_001_compliant.json").read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        Transcript.load(path)
    assert info.value.path == str(path)
    assert str(info.value) == f"{path}: {where}"


def test_misspelt_evidence_field_is_rejected() -> None:
    assert Evidence(span="您好", span_chars=[0, 2]).span_chars == [0, 2]
    with pytest.raises(ValueError, match="spanchars"):
        Evidence(span="您好", spanchars=[0, 2])


def _run_cli(args: list[str]) -> str:
    from click.testing import CliRunner

    from pipeline.cli import cli

    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_schema_cli_rejects_an_unknown_contract() -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli

    res = CliRunner().invoke(cli, ["schema", "verdict"])
    assert res.exit_code == 2 and "transcript" in res.output


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.is_dir(), reason="samples/archive is absent")
def test_transcribed_and_scored_audio_has_no_extras(tmp_path: Path) -> None:
    """The real ASR model on one stereo archive sample: transcript and result stay closed."""
    (wav,) = ARCHIVE.glob("c01-*.wav")
    transcripts = tmp_path / "transcripts"
    transcripts.mkdir()
    out = transcripts / f"{wav.stem}.json"
    assert callqa(["transcribe", str(wav), "--out", str(out)]) == 0
    raw = json.loads(out.read_text(encoding="utf-8"))
    transcript = Transcript.model_validate(raw)
    assert assert_no_extras(transcript) > 1
    assert json.loads(transcript.to_json()) == raw
    p = transcript.produced_by
    assert p.asr_engine and p.channels == 2 and p.roles.method and p.dropped is not None
    jsonschema.validate(raw, contract_schema("transcript"))
    results = tmp_path / "results"
    assert callqa(["score", str(transcripts), "--out", str(results)]) == 0
    (result,) = results.glob("*.json")
    _check_result_document(json.loads(result.read_text(encoding="utf-8")))


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.is_dir(), reason="samples/archive is absent")
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg makes the mono mix-down")
def test_diarized_mono_transcript_has_no_extras(tmp_path: Path) -> None:
    """The mono path writes what stereo does not (speaker labels, the agent's label)."""
    from pipeline.config import load_settings
    from pipeline.transcribe import transcribe_call
    from pipeline.transcribe.diarize import mono_diarizer

    mono = tmp_path / "mono.wav"
    (wav,) = ARCHIVE.glob("c01-*.wav")
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(wav), "-ac", "1", "-ar", "8000", str(mono)],
        check=True,
    )
    transcript = transcribe_call(
        mono, settings=load_settings(language="en"), diarizer=mono_diarizer("embedded")
    )
    raw = json.loads(transcript.to_json())
    closed = Transcript.model_validate(raw)
    assert assert_no_extras(closed) > 1 and json.loads(closed.to_json()) == raw
    assert all(u.speaker_label for u in closed.utterances)
    assert closed.produced_by.roles.agent_speaker in {u.speaker_label for u in closed.utterances}
