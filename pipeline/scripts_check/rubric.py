"""Rubric YAML (DESIGN.md, "Rubric YAML"): pydantic models and the validating loader.

A rubric that does not validate is rejected with the file, the path inside it and the
reason (``rubrics/x.yaml: sections[0].items[2].check.required.within: unknown key
'frist_turns'``); nothing is scored with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from pipeline.scripts_check.operators import OPERATORS, Operator
from pipeline.scripts_check.text import normalise

_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"


class RubricError(ValueError):
    """A rubric file that does not validate: file, location inside it, reason."""

    def __init__(self, path: str | Path | None, location: str, reason: str, problems=None):
        self.path = str(path) if path is not None else "<rubric>"
        self.location = location
        self.reason = reason
        # every problem found, (location, reason); the message names the first
        self.problems: list[tuple[str, str]] = problems or [(location, reason)]
        where = f"{location}: " if location else ""
        super().__init__(f"{self.path}: {where}{reason}")

    def lines(self) -> list[str]:
        return [f"{self.path}: {loc + ': ' if loc else ''}{why}" for loc, why in self.problems]


def _tag_check(value: Any) -> Any:
    """``{required: {...}}`` → ``{"op": "required", ...}`` for the discriminated union."""
    valid = ", ".join(sorted(OPERATORS))
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping with one operator ({valid})")
    if len(value) != 1:
        got = ", ".join(map(str, value)) or "none"
        raise ValueError(f"needs exactly one operator, got {len(value)} ({got}); valid: {valid}")
    ((name, body),) = value.items()
    if name not in OPERATORS:
        raise ValueError(f"unknown operator {name!r}; valid: {valid}")
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise ValueError(f"{name}: must be a mapping of settings")
    if "op" in body:
        raise ValueError(f"{name}: unknown key 'op'")
    return {**body, "op": name}


# Discriminated union over the registered operators (tag "op", taken from the YAML key).
Check = Annotated[Union[tuple(OPERATORS.values())], Field(discriminator="op")]  # noqa: UP007


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Item(_Strict):
    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    points: float = Field(gt=0)
    critical: bool = False
    description: str | None = None
    check: Check

    _tag = field_validator("check", mode="before")(_tag_check)

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


class Rubric(_Strict):
    id: str = Field(pattern=_ID)
    version: int | str
    language: Literal["zh", "en"]
    title: str = Field(min_length=1)
    description: str | None = None
    sections: list[Section] = Field(min_length=1)

    _sha256: str | None = PrivateAttr(default=None)
    _path: str | None = PrivateAttr(default=None)

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

    def items(self) -> list[tuple[Section, Item]]:
        return [(s, i) for s in self.sections for i in s.items]


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    found = []
    for err in exc.errors():
        loc, kind, msg = tuple(err["loc"]), err["type"], err["msg"]
        if kind == "extra_forbidden":
            found.append((_where(loc[:-1]), f"unknown key {loc[-1]!r}"))
        elif kind == "missing":
            found.append((_where(loc[:-1]), f"missing key {loc[-1]!r}"))
        else:
            found.append((_where(loc), msg.removeprefix("Value error, ")))
    return found


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
            for key in ("phrases", "exclude"):
                for k, phrase in enumerate(getattr(check, key, None) or []):
                    if not len(normalise(phrase, rubric.language)):
                        found.append(
                            (
                                f"{here}.check.{check.op}.{key}[{k}]",
                                f"phrase {phrase!r} is empty once punctuation is removed",
                            )
                        )
    return found


def parse_rubric(data: Any, path: str | Path | None = None, content: bytes | None = None) -> Rubric:
    """Validate an already-parsed rubric mapping; raise :class:`RubricError` when broken."""
    if not isinstance(data, dict):
        raise RubricError(
            path, "", f"expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc)
        raise RubricError(path, *problems[0], problems=problems) from None
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
    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        raise RubricError(path, "", "file not found") from None
    except OSError as exc:
        raise RubricError(path, "", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise RubricError(path, "", "not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RubricError(path, where, f"not valid YAML: {problem}") from None
    if data is None:
        raise RubricError(path, "", "file is empty")
    return parse_rubric(data, path, content)
