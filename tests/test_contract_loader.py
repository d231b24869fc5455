"""The one YAML-to-model loader: every rule file's errors name the file, the YAML path, why."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from pipeline.contracts import ContractError, load_model, read_yaml
from pipeline.redact import RecognizerError, load_recognizers
from pipeline.routing import RoutingError, load_routing
from pipeline.schema import ContractError as SchemaContractError
from pipeline.score.risk.config import load_calibration, load_risk_config
from pipeline.score.risk.signals import load_signals
from pipeline.scripts_check import RubricError, load_rubric
from pipeline.scripts_check.cases import load_cases
from pipeline.transcribe.agent_identification import load_agent_phrases
from pipeline.transcribe.hallucination import RulesError, load_rules


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    weight: float = Field(ge=0)


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Item]


# (file content, expected message after "<file>: ")
BROKEN = [
    ("", "file is empty"),
    ("items: [\n", "line 2: not valid YAML: expected the node content"),
    ("- a\n- b\n", "expected a mapping at the top level, got list"),
    ("just text\n", "expected a mapping at the top level, got str"),
    (
        "items: [{id: a, weight: -1}]\n",
        "items[0].weight: Input should be greater than or equal to 0",
    ),
    ("items: [{id: a, weight: 1, wieght: 2}]\n", "items[0]: unknown key 'wieght'"),
    ("items: [{id: a, weight: 1}, {weight: 1}]\n", "items[1]: missing key 'id'"),
    ("itms: []\n", "(top level): missing key 'items'"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN)
def test_broken_yaml_names_file_path_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "form.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_model(path, Form)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)
    assert info.value.file == str(path)


def test_every_problem_is_listed_and_the_message_names_the_first(tmp_path: Path) -> None:
    path = tmp_path / "form.yaml"
    path.write_text("items: [{id: a, weight: -1}, {id: b}]\n", encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_model(path, Form)
    assert [loc for loc, _ in info.value.problems] == ["items[0].weight", "items[1]"]
    assert info.value.location == "items[0].weight"
    assert info.value.lines()[1] == f"{path}: items[1]: missing key 'weight'"


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="nope.yaml: file not found"):
        load_model(tmp_path / "nope.yaml", Form)
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ContractError, match="bin.yaml: not UTF-8 text"):
        load_model(path, Form)


def test_section_and_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text("form: {items: [{id: a, weight: x}]}\n", encoding="utf-8")
    with pytest.raises(ContractError, match=r"form\.items\[0\]\.weight: "):
        load_model(path, Form, section="form")
    with pytest.raises(ContractError, match=r"\(top level\): missing key 'other'"):
        load_model(path, Form, section="other")
    path.write_text("", encoding="utf-8")
    assert read_yaml(path, allow_empty=True)[0] == {}


def test_unsafe_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("items: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_model(path, Form)


# Each shipped loader: (loader, its error type, broken content, expected part of the message)
LOADERS = [
    (load_rubric, RubricError, "id: x\ntitle: X\nversion: 1\nlanguage: zh\nsections: [{}]\n", "sections[0]: missing key"),
    (load_cases, RubricError, "cases: [{bogus: 1}]\n", "cases[0]"),
    (load_routing, RoutingError, "version: 1\nroutes: [{match: {team: A}}]\n", "routes[0]: missing key 'rubric'"),
    (load_recognizers, RecognizerError, "recognizers: [\n", "not valid YAML"),
    (load_signals, ContractError, "- a list\n", "expected a mapping at the top level"),
    (load_risk_config, ContractError, "surprise: 1\n", "(top level): missing key"),
    (load_calibration, ContractError, "version: x\n", "version: "),
    (load_rules, RulesError, "always: [ok]\nthresholds: {max_repeats: 0}\n", "thresholds.max_repeats: "),
    (load_agent_phrases, ContractError, "phrases: {en: []}\n", "phrases: "),
    (load_agent_phrases, ContractError, "phrases: {en: [{text: hi, kind: x, weight: 1}]}\n", "phrases.en[0].kind: "),
]  # fmt: skip


@pytest.mark.parametrize(("loader", "error", "text", "message"), LOADERS)
def test_every_rule_file_loader_raises_a_contract_error(
    tmp_path: Path, loader, error, text: str, message: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error) as info:
        loader(str(path))
    assert isinstance(info.value, ContractError) and isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{path}: "), str(info.value)
    assert message in str(info.value), str(info.value)


def test_schema_re_exports_the_same_error() -> None:
    assert SchemaContractError is ContractError
