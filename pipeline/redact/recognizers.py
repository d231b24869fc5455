"""Recogniser sets as data: YAML validated by pydantic, in the manner of microsoft/presidio.

A set (``recognizers/zh.yaml``) holds a version, the score threshold, the mask of each
entity type, regex macros and the recognisers. A recogniser is either

* ``kind: number``: its patterns must match the *whole* digit string of a range of numeral
  groups (see :mod:`pipeline.redact.normalize`), optionally with given group lengths, and a
  named validator (check digit, Luhn, SSA rules) turns the candidate into a verdict; or
* ``kind: text``: its patterns are searched in the utterance (numerals already turned
  into digits); a named group ``pii`` marks the span to mask when a lead-in is matched.

Score = pattern score + validation score of the verdict (``null``: reject) + context score
when a context word is near (same utterance, or the end of the previous one) − negative
context score when a negative word is near. A finding is kept at ``min_score`` or above.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.redact.validators import VALIDATORS
from pipeline.schema import ContractError

RECOGNIZERS_DIR = Path(__file__).resolve().parent / "recognizers"
_MACRO = re.compile(r"\{\{(\w+)\}\}")


class RecognizerError(ContractError):
    """A recogniser file that does not validate: names the file, the path inside, the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PatternSpec(_Strict):
    name: str
    regex: str
    score: float = Field(ge=0, le=1)
    groups: list[int] | None = None  # number kind: required lengths of the numeral groups

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return value

    @property
    def compiled(self) -> re.Pattern[str]:
        return _compile(self.regex)


class ValidationScores(_Strict):
    """Score added per validator verdict; ``null`` rejects the candidate."""

    valid: float | None = 0.5
    plausible: float | None = 0.0
    invalid: float | None = None


class RecognizerSpec(_Strict):
    name: str
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    kind: Literal["number", "text"]
    patterns: list[PatternSpec] = Field(min_length=1)
    validator: str | None = None
    validation: ValidationScores = Field(default_factory=ValidationScores)
    context: list[str] = Field(default_factory=list)
    context_score: float = Field(default=0.0, ge=0, le=1)
    negative_context: list[str] = Field(default_factory=list)
    negative_context_score: float = Field(default=0.0, ge=0, le=1)
    mask: str | None = None  # overrides the set's mask for this entity

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, value: str | None) -> str | None:
        if value is not None and value not in VALIDATORS:
            raise ValueError(
                f"unknown validator {value!r}; valid names: {', '.join(sorted(VALIDATORS))}"
            )
        return value


class ContextWindow(_Strict):
    before: int = Field(default=24, ge=0)
    after: int = Field(default=8, ge=0)
    previous_utterance: int = Field(default=40, ge=0)


class RecognizerSet(_Strict):
    version: str
    language: str
    min_score: float = Field(default=0.5, ge=0, le=1)
    context_window: ContextWindow = Field(default_factory=ContextWindow)
    masks: dict[str, str]
    macros: dict[str, str] = Field(default_factory=dict)
    recognizers: list[RecognizerSpec] = Field(min_length=1)
    source: str | None = None
    sha256: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand_macros(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        macros = data.get("macros") or {}
        if not isinstance(macros, dict):
            return data
        for rec in data.get("recognizers") or []:
            for pat in (rec.get("patterns") or []) if isinstance(rec, dict) else []:
                if isinstance(pat, dict) and isinstance(pat.get("regex"), str):
                    pat["regex"] = _expand(pat["regex"], macros)
        return data

    @model_validator(mode="after")
    def _masks_cover_entities(self) -> RecognizerSet:
        names = [r.name for r in self.recognizers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate recognizer names: {', '.join(dupes)}")
        missing = sorted({r.entity for r in self.recognizers if r.mask is None} - set(self.masks))
        if missing:
            raise ValueError(f"no mask for entity types: {', '.join(missing)}")
        return self

    def mask_for(self, recognizer: RecognizerSpec) -> str:
        return recognizer.mask or self.masks[recognizer.entity]

    @property
    def label(self) -> str:
        return f"{self.language}@{self.version}"


def _expand(regex: str, macros: dict[str, Any]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in macros:
            raise ValueError(
                f"unknown macro {{{{{name}}}}}; defined: {', '.join(sorted(macros)) or 'none'}"
            )
        return str(macros[name])

    # macros may use macros; three levels are plenty
    for _ in range(3):
        regex = _MACRO.sub(sub, regex)
    return regex


@lru_cache(maxsize=512)
def _compile(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def load_recognizers(path: str | Path) -> RecognizerSet:
    """Read and validate one recogniser YAML; :class:`RecognizerError` when it is wrong."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecognizerError(path, "file not found") from None
    except OSError as exc:
        raise RecognizerError(path, f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise RecognizerError(path, f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecognizerError(path, "expected a mapping at the top level")
    try:
        rs = RecognizerSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        raise RecognizerError(path, f"{where}: {msg}") from None
    except ValueError as exc:  # a macro error raised before field validation
        raise RecognizerError(path, f"macros: {exc}") from None
    return rs.model_copy(update={"source": str(path), "sha256": hashlib.sha256(raw).hexdigest()})


@lru_cache(maxsize=8)
def default_set(language: str) -> RecognizerSet:
    """The shipped set of one language (``zh`` or ``en``), loaded once per process."""
    path = RECOGNIZERS_DIR / f"{language}.yaml"
    if not path.exists():
        valid = sorted(p.stem for p in RECOGNIZERS_DIR.glob("*.yaml"))
        raise RecognizerError(
            path, f"no recogniser set for {language!r}; valid: {', '.join(valid)}"
        )
    return load_recognizers(path)


def sets_for_language(language: str | None) -> list[RecognizerSet]:
    """Shipped sets for a transcript language: zh*/cmn → zh, en* → en, anything else → all."""
    lang = (language or "").lower()
    if lang.startswith(("zh", "cmn", "yue")):
        return [default_set("zh")]
    if lang.startswith("en"):
        return [default_set("en")]
    return [default_set(p.stem) for p in sorted(RECOGNIZERS_DIR.glob("*.yaml"))]
