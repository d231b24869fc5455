"""docs/contracts.md stays in step with the contract models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.cli import COMMANDS
from pipeline.schema import Result, Transcript
from pipeline.schema_cli import contract_models
from pipeline.scripts_check.operators import OPERATORS
from pipeline.scripts_check.rubric import Rubric, parse_rubric
from tests.builders import assert_no_extras, contract_classes

DOC = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w+)(?: (\w+))?\n(.*?)^```$", re.S | re.M)


def _blocks(language: str, tag: str | None = None) -> list[str]:
    return [
        body for lang, t, body in BLOCK.findall(TEXT) if lang == language and (t or None) == tag
    ]


@pytest.mark.parametrize("contract", ["transcript", "result", "rubric"])
def test_every_model_and_field_is_documented(contract: str) -> None:
    missing = []
    for cls in contract_classes(contract_models()[contract]):
        if f"`{cls.__name__}`" not in TEXT:
            missing.append(cls.__name__)
        missing += [f"{cls.__name__}.{f}" for f in cls.model_fields if f"`{f}`" not in TEXT]
    assert missing == [], f"{DOC}: not documented: {missing}"


def test_every_rubric_operator_is_documented() -> None:
    ops = {c.model_fields["op"].default for c in contract_classes(Rubric) if "op" in c.model_fields}
    assert len(ops) >= 15 and ops <= set(OPERATORS)
    for name in OPERATORS:
        assert f"| `{name}` |" in TEXT, f"{DOC}: operator {name} is not in the operator table"


def test_transcript_example_validates_closed() -> None:
    (body,) = _blocks("json", "transcript")
    transcript = Transcript.model_validate(json.loads(body))
    assert assert_no_extras(transcript) > 3 and transcript.produced_by.roles is not None


def test_result_example_validates_closed() -> None:
    (body,) = _blocks("json", "result")
    raw = json.loads(body)
    result = Result.model_validate(raw)
    assert assert_no_extras(result) > 10
    assert json.loads(result.to_json()) == raw  # nothing in the example beside the contract
    assert result.sections and result.items[0].evidence[0].span_chars


def test_rubric_example_validates() -> None:
    (body,) = _blocks("yaml", "rubric")
    rubric = parse_rubric(yaml.safe_load(body), path=f"{DOC}#rubric")
    assert isinstance(rubric, Rubric) and rubric.points == 100


def test_result_example_is_what_score_writes_for_the_examples(tmp_path: Path) -> None:
    """Score the documented transcript with the documented rubric: the documented result."""
    from pipeline.cli import main as callqa

    (transcript,) = _blocks("json", "transcript")
    (rubric,) = _blocks("yaml", "rubric")
    (documented,) = _blocks("json", "result")
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "demo_001.json").write_text(transcript, encoding="utf-8")
    (tmp_path / "zh_demo.yaml").write_text(rubric, encoding="utf-8")
    out = tmp_path / "r.json"
    args = [
        "score",
        str(tmp_path / "t" / "demo_001.json"),
        "--rubric",
        str(tmp_path / "zh_demo.yaml"),
    ]
    assert callqa([*args, "--out", str(out)]) == 0
    written, want = json.loads(out.read_text(encoding="utf-8")), json.loads(documented)
    # what varies with the machine and the run: timings, the rubric's path
    for doc in (written, want):
        doc["produced_by"].pop("stage_seconds", None)
        doc["produced_by"]["rubric_route"].pop("rubric")
    assert sorted(written) == sorted(want)
    assert written["items"] == want["items"] and written["sections"] == want["sections"]
    assert sorted(written["produced_by"]) == sorted(want["produced_by"])


def test_cli_examples_name_real_commands() -> None:
    (body,) = _blocks("console")
    commands = [line.split()[2] for line in body.splitlines() if line.startswith("$ callqa ")]
    assert "schema" in commands and all(c in COMMANDS for c in commands)
