"""Recogniser sets as data: YAML validated by pydantic, in the manner of microsoft/presidio.

A set (``recognizers/zh.yaml``) holds a version, the score threshold, the mask of each
entity type, regex macros and the recognisers. A recogniser is either

* ``kind: number``: its patterns must match the *whole* digit string of a range of numeral
  groups (see :mod:`pipeline.redact.digits`), optionally with given group lengths, and a
  named validator (check digit, Luhn, SSA rules) turns the candidate into a verdict; or
* ``kind: text``: its patterns are searched in the utterance (numerals already turned
  into digits); a named group ``pii`` marks the span to mask when a lead-in is matched.

Score = pattern score + validation score of the verdict (``null``: reject) + context score
when a context word is near (same utterance, or the end of the previous one) − negative
context score when a negative word is near. A finding is kept at ``min_score`` or above.

Two more sections are data too:

* ``dialogue``: requests (an agent asking for an account, card, ID, phone, PIN, password,
  verification code, date of birth or address) and the entity each implies; the customer's
  answer to one (see :mod:`pipeline.redact.dialogue`) is masked whatever its length.
* ``test_numbers``: well-known fictitious numbers (555 phones, SSN 123-45-6789) that are
  kept, but only when nothing around them says they are someone's.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.contracts import ContractError, read_yaml, validate
from pipeline.redact.validators import VALIDATORS

RECOGNIZERS_DIR = Path(__file__).resolve().parent / "recognizers"
WORD_LISTS_DIR = Path(__file__).resolve().parent / "data"  # shipped name lists
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
    # a speaker giving their own name (我叫…, "my name is…"): on the agent's side, the
    # set's ``agent_name`` decides (the name in the greeting is often required evidence)
    self_introduction: bool = False

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
    # known by its length alone: yields to a request's answer (whose entity and evidence
    # stand: 银行咖号 asked, so the 16 digits are a card, not just a long number)
    fallback: bool = False

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, value: str | None) -> str | None:
        if value is not None and value not in VALIDATORS:
            raise ValueError(
                f"unknown validator {value!r}; valid names: {', '.join(sorted(VALIDATORS))}"
            )
        return value


def _check_regexes(values: list[str]) -> list[str]:
    for value in values:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return values


class RequestRule(_Strict):
    """An agent's request for one kind of personal data, and the entity its answer is."""

    name: str
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    patterns: list[str] = Field(min_length=1)  # regexes searched in the agent's turn
    # plain phrases found through ASR noise by the rubric's tolerant matcher
    # (pipeline.scripts_check.match): "date on birth", 身份正号码, "count number"
    phrases: list[str] = Field(default_factory=list)
    # numbers: mask the numerals of the answer; answer: mask the whole answer (addresses,
    # dates of birth, passwords are not only numerals)
    # name: mask the names in the answer (``name_patterns``), or the whole of a short one
    scope: Literal["numbers", "answer", "name"] = "numbers"
    # numerals right after the words in the same turn ("my account number is 6338") too
    declared: bool = True
    # what else counts as the value when said right after the words in the same turn
    # (numerals always do): a spoken date for a date of birth ("my date of birth is the
    # fourth of July 1980", 我的出生日期是一九八五年三月十二号); macros expand
    value_patterns: list[str] = Field(default_factory=list)

    @field_validator("patterns", "value_patterns")
    @classmethod
    def _valid_regexes(cls, value: list[str]) -> list[str]:
        return _check_regexes(value)


class Dialogue(_Strict):
    """Requests and how far their answer runs (see :mod:`pipeline.redact.dialogue`)."""

    score: float = Field(default=0.95, ge=0, le=1)
    max_answers: int = Field(default=3, ge=1)  # customer turns that may hold the answer
    max_seconds: float = Field(default=30.0, gt=0)  # from the request to an answer turn
    request_cues: list[str] = Field(min_length=1)  # a request also needs one of these (or ?)
    not_request: list[str] = Field(default_factory=list)  # "never tell anyone your PIN"
    fillers: list[str] = Field(default_factory=list)  # turns of only these are backchannels
    keep_before: str | None = None  # a numeral right after this is not the answer ($)
    keep_after: str | None = None  # ... nor one right before this (dollars, 块, times)
    declared_window: int = Field(default=12, ge=0)  # non-filler chars from words to numerals
    keep_words: list[str] = Field(default_factory=list)  # a numeral word alone: "the new one"
    # words naming another number (工号, 编号, 订单号): numerals after one of them, between a
    # request's words and the numerals, are that number's ("信用卡中心公号五六二零三")
    other_numbers: list[str] = Field(default_factory=list)
    # a run of at least this many digits that is part of a personal number found earlier in
    # the call is that number read back partly (ASR heard "360298" of 13602981753); None: off
    partial_min_digits: int | None = Field(default=None, ge=4)
    # a request's ``phrases`` count at this similarity or above, where only homophones,
    # spelling slips, split/joined words and extra words differ, plus at most one of
    # ``phrase_loose_words`` changed or dropped ("date on birth"); a content word changed
    # or dropped is never a request ("date of purchase")
    phrase_min_similarity: float = Field(default=0.8, gt=0, le=1)
    phrase_loose_words: list[str] = Field(default_factory=list)
    # the answer to a ``scope: name`` request: these regexes (group ``pii``: the name) find
    # the names in it; an answer with none and at most ``name_answer_max`` units (zh
    # characters, en words) is taken whole ("robert smith", "张伟")
    name_patterns: list[str] = Field(default_factory=list)
    name_answer_max: int = Field(default=4, ge=0)
    requests: list[RequestRule] = Field(min_length=1)

    @field_validator("request_cues", "not_request", "name_patterns", "other_numbers")
    @classmethod
    def _valid_regexes(cls, value: list[str]) -> list[str]:
        return _check_regexes(value)

    @field_validator("keep_before", "keep_after")
    @classmethod
    def _keep_compiles(cls, value: str | None) -> str | None:
        return _check_regexes([value])[0] if value is not None else None


class TestNumbers(_Strict):
    """Fictitious numbers kept when no word around them says they are someone's."""

    enabled: bool = True
    numbers: list[str] = Field(min_length=1)  # regexes, full match on the digit string
    personal_context: list[str] = Field(default_factory=list)  # my, 我的...: not exempt
    # whose numbers may be exempt at all: a customer's (or an unknown speaker's) never are
    speakers: list[Literal["agent", "customer", "unknown"]] = Field(
        default_factory=lambda: ["agent"]
    )

    @field_validator("numbers")
    @classmethod
    def _valid_regexes(cls, value: list[str]) -> list[str]:
        return _check_regexes(value)


class ContextWindow(_Strict):
    before: int = Field(default=24, ge=0)
    after: int = Field(default=8, ge=0)
    previous_utterance: int = Field(default=40, ge=0)


class RecognizerSet(_Strict):
    version: str
    language: str
    min_score: float = Field(default=0.5, ge=0, le=1)
    # keep: a self-introduction on the agent's side stays (工号 and name in the greeting
    # are script evidence); mask: it is masked like the customer's
    agent_name: Literal["keep", "mask"] = "keep"
    # macro name -> word-list file (one entry a line, # comments), relative to the YAML
    # file or else a shipped list (pipeline/redact/data): the macro becomes an
    # alternation of the entries, longest first
    word_lists: dict[str, str] = Field(default_factory=dict)
    context_window: ContextWindow = Field(default_factory=ContextWindow)
    masks: dict[str, str]
    macros: dict[str, str] = Field(default_factory=dict)
    recognizers: list[RecognizerSpec] = Field(min_length=1)
    dialogue: Dialogue | None = None
    test_numbers: TestNumbers | None = None
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
        dialogue = data.get("dialogue")
        if not isinstance(dialogue, dict):
            return data
        holders = [dialogue, *(r for r in dialogue.get("requests") or [] if isinstance(r, dict))]
        for holder, key in [(dialogue, "name_patterns")] + [
            (r, "value_patterns") for r in holders[1:]
        ]:
            if isinstance(holder.get(key), list):
                holder[key] = [_expand(v, macros) if isinstance(v, str) else v for v in holder[key]]
        return data

    @model_validator(mode="after")
    def _masks_cover_entities(self) -> RecognizerSet:
        names = [r.name for r in self.recognizers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate recognizer names: {', '.join(dupes)}")
        entities = {r.entity for r in self.recognizers if r.mask is None}
        if self.dialogue is not None:
            entities |= {r.entity for r in self.dialogue.requests}
            names = [r.name for r in self.dialogue.requests]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate dialogue request names: {', '.join(dupes)}")
        missing = sorted(entities - set(self.masks))
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


def _word_list_macros(path: Path, data: dict[str, Any]) -> bytes:
    """Turn ``word_lists`` into macros of ``data`` (in place); the lists' bytes, for the hash."""
    lists = data.get("word_lists") or {}
    if not isinstance(lists, dict):
        return b""  # the model's validation names the problem
    macros = data.setdefault("macros", {})
    if not isinstance(macros, dict):
        return b""
    raw = b""
    for name, rel in lists.items():
        where = f"word_lists.{name}"
        if not isinstance(rel, str):
            raise RecognizerError(path, where, "must be a file name")
        if name in macros:
            raise RecognizerError(path, where, f"macro {name!r} is also defined in macros")
        file = (path.parent / rel).resolve()
        if not file.is_file() and (WORD_LISTS_DIR / rel).is_file():
            file = WORD_LISTS_DIR / rel  # a shipped list, from a set copied elsewhere
        if not file.is_file():
            raise RecognizerError(
                path,
                where,
                f"word list {rel!r} is neither in {path.parent} nor in {WORD_LISTS_DIR}",
            )
        body = file.read_bytes()
        try:
            lines = body.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise RecognizerError(path, where, f"word list {file} is not UTF-8") from None
        words = sorted(
            {w.strip() for w in lines if w.strip() and not w.lstrip().startswith("#")},
            key=lambda w: (-len(w), w),
        )
        if not words:
            raise RecognizerError(path, where, f"word list {file} has no entries")
        macros[name] = "(?:" + "|".join(re.escape(w) for w in words) + ")"
        raw += f"{name}={rel}\n".encode() + body
    return raw


def load_recognizers(path: str | Path) -> RecognizerSet:
    """Read and validate one recogniser YAML (and its word lists); :class:`RecognizerError`
    naming the file, the place and the reason when it is wrong."""
    path = Path(path)
    data, raw = read_yaml(path, error=RecognizerError)
    raw += _word_list_macros(path, data)
    rs = validate(data, RecognizerSet, path, error=RecognizerError)
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


def shipped_sets() -> list[RecognizerSet]:
    """Every shipped recogniser set, in file-name order (loaded once per process)."""
    return list(_shipped())


@lru_cache(maxsize=1)
def _shipped() -> tuple[RecognizerSet, ...]:
    return tuple(default_set(p.stem) for p in sorted(RECOGNIZERS_DIR.glob("*.yaml")))


def recognizer_sha256(sets: list[RecognizerSet] | None = None) -> str:
    """One sha256 of the recogniser configuration: ``sets`` (default: every shipped set).

    The hash of the sorted ``label=file-sha256`` lines, so it changes when any recogniser
    YAML byte changes (the scoring config records it).
    """
    if sets is None:
        sets = shipped_sets()
    lines = sorted(f"{s.label}={s.sha256 or ''}" for s in sets)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
