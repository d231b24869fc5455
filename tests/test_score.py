"""The weighted form (sections, critical auto-fail, evidence, provenance) and `callqa score`."""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.schema import ItemResult, Result, Risk, Transcript, Utterance
from pipeline.score import score_transcript
from pipeline.score.form import score_form
from pipeline.scripts_check import load_rubric

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "zh_transcripts"
RUBRIC = load_rubric("zh_bank_hotline")
CALL = Transcript(
    call_id="c1", utterances=[Utterance(speaker="agent", start=0, end=1, text="您好")]
)


def _items(verdicts: dict[str, bool | None]) -> list[ItemResult]:
    out = []
    for section, item in RUBRIC.items():
        passed = verdicts.get(item.id, True)
        out.append(
            ItemResult(
                id=item.id,
                section=section.id,
                passed=passed,
                points=item.points if passed else 0,
                max_points=item.points,
                critical=item.critical,
                needs_review=passed is None,
            )
        )
    return out


@pytest.mark.parametrize(
    ("verdicts", "total", "auto_fail", "review"),
    [
        ({}, 100, False, False),
        ({"greeting": False}, 92, False, False),
        ({"greeting": False, "farewell": False, "risk_disclosure": False}, 74, False, False),
        ({"no_forbidden": False}, 0, True, True),  # red line zeroes the form
        ({"courtesy": None}, 95, False, True),  # undecided: 0 points, needs review
    ],
)
def test_form_arithmetic(verdicts, total, auto_fail, review) -> None:
    result = score_form(CALL, RUBRIC, _items(verdicts), None)
    assert (result.total, result.max, result.auto_fail, result.needs_review) == (
        total,
        100,
        auto_fail,
        review,
    )
    sections = {s.id: s for s in result.sections}
    assert sum(s.max for s in sections.values()) == 100
    if not auto_fail:
        assert sum(s.points for s in sections.values()) == total


def test_not_applicable_items_leave_max() -> None:
    items = _items({})
    items[0].applicable = False
    result = score_form(CALL, RUBRIC, items, None)
    assert (result.total, result.max) == (92, 92)


def test_high_risk_needs_review_and_provenance() -> None:
    risk = Risk(score=0.9, level="high")
    result = score_transcript(CALL, RUBRIC, risk_fn=lambda t: risk)
    assert result.risk == risk and result.needs_review
    assert result.rubric.sha256 == RUBRIC.sha256 and len(result.produced_by.transcript_sha256) == 64
    assert result.produced_by.rubric.id == "zh_bank_hotline"
    assert all(i.evidence for i in result.items)
    Result.model_validate_json(result.to_json())  # round-trips through the contract


def test_cli_scores_folder_and_reports_broken_file(tmp_path: Path) -> None:
    from pipeline.score.cli import score

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("bank_001_compliant.json", "bank_002_missing_greeting.json"):
        shutil.copy(SAMPLES / name, inputs / name)
    (inputs / "broken.json").write_text('{"utterances": [{"speaker": "agent"', encoding="utf-8")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        score, [str(inputs), "--rubric", "zh_bank_hotline", "--no-risk", "--out", str(out)]
    )
    assert res.exit_code == 1
    assert "broken.json: not valid JSON" in res.output
    written = sorted(p.name for p in out.glob("*.json"))
    assert written == ["bank_001_compliant.json", "bank_002_missing_greeting.json"]
    r = Result.load(out / "bank_002_missing_greeting.json")
    assert r.call_id == "bank_002_missing_greeting"  # derived from the file name
    # greeting 8 + job number 4 lost; 分期 / complaint / retention items not applicable
    assert r.language == "zh" and (r.total, r.max) == (73, 85)


def test_cli_single_file_to_stdout() -> None:
    from pipeline.score.cli import score

    res = CliRunner().invoke(
        score,
        [str(SAMPLES / "bank_003_forbidden.json"), "--rubric", "zh_bank_hotline", "--no-risk"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["auto_fail"] is True and data["total"] == 0 and "risk" not in data


def test_cli_bad_rubric_stops(tmp_path: Path) -> None:
    from pipeline.score.cli import score

    res = CliRunner().invoke(
        score, [str(SAMPLES / "bank_003_forbidden.json"), "--rubric", "no_such"]
    )
    assert res.exit_code == 1 and "unknown rubric 'no_such'" in res.output


def test_default_risk_fn_is_the_in_tree_risk_engine() -> None:
    from pipeline.score import default_risk_fn
    from pipeline.score.risk import assess_risk

    assert default_risk_fn() is assess_risk


@pytest.mark.slow
def test_cli_workers_give_the_same_results_as_one_process(tmp_path: Path) -> None:
    """Worker processes (models loaded in each) write byte-identical Results, risk included,
    and a broken file is still reported by name while the others are scored."""
    from pipeline.score.cli import score

    inputs = tmp_path / "in"
    inputs.mkdir()
    names = sorted(p.name for p in SAMPLES.glob("*.json"))[:4]
    for name in names:
        shutil.copy(SAMPLES / name, inputs / name)
    (inputs / "broken.json").write_text("{", encoding="utf-8")
    written = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        args = [str(inputs), "--rubric", "zh_bank_hotline", "--out", str(out)]
        res = CliRunner().invoke(score, [*args, "--workers", workers])
        assert res.exit_code == 1 and "broken.json" in res.output
        written[workers] = {p.name: p.read_bytes() for p in sorted(out.glob("*.json"))}
    assert sorted(written["1"]) == names
    for name in names:
        one, two = (
            written["1"][name].decode().splitlines(),
            written["2"][name].decode().splitlines(),
        )
        diff = list(difflib.unified_diff(one, two, "in-process", "2 workers", n=1, lineterm=""))
        assert not diff, f"{name}:\n" + "\n".join(diff[:40])
    assert all(json.loads(v)["risk"]["model"] for v in written["2"].values())
