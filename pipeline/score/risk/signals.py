"""Explicit complaint signals as data: rules in ``rubrics/risk/<lang>.yaml``, one matcher.

A rule is a set of regular expressions with a kind (escalation, strong_negative, ...), a weight
in logit units and the role whose speech it applies to. A match is suppressed when a negation
cue stands just before it in the same clause (我不是要投诉, "I don't want to complain") or a
reported-speech / hypothetical cue opens the clause (上次有人说要投诉). Every hit keeps its
utterance, matched text and reason, suppressed ones included, so the engine can explain itself.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.contracts import load_model
from pipeline.schema import Transcript

SignalKind = Literal[
    "escalation",
    "complaint",
    "strong_negative",
    "repeated_contact",
    "unresolved",
    "rejection",
    "rhetorical",
    "refund",
    "churn",
    "agent_provocation",
    "resolved",
]
_CLAUSE_END = re.compile(r"[。！？!?；;，,、…\n]|\.\s|\bbut\b", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Cue(_Strict):
    text: str = Field(min_length=1)
    window: int | None = Field(default=None, ge=0)  # max characters between cue and match


class CueSet(_Strict):
    window: int = Field(default=3, ge=0)
    cues: list[Cue] = Field(default_factory=list)

    @field_validator("cues", mode="before")
    @classmethod
    def _plain_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"text": v} if isinstance(v, str) else v for v in value]
        return value


class SignalRule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: SignalKind
    weight: float
    role: Literal["customer", "agent", "any"] = "customer"
    # ending: only the last turns of the role (ending_turns); last: only its very last turn
    scope: Literal["anywhere", "ending", "last"] = "anywhere"
    negatable: bool = True
    reason: str = Field(min_length=1)
    patterns: list[str] = Field(min_length=1)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, p in enumerate(patterns):
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(
                    f"pattern {i} {p!r} is not a valid regular expression: {exc}"
                ) from None
        return patterns


class SignalSet(_Strict):
    id: str
    version: int | str
    language: str
    negation: CueSet = Field(default_factory=CueSet)
    hypothetical: CueSet = Field(default_factory=lambda: CueSet(window=1000))
    signals: list[SignalRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> SignalSet:
        seen: set[str] = set()
        for rule in self.signals:
            if rule.id in seen:
                raise ValueError(f"duplicate signal id {rule.id!r}")
            seen.add(rule.id)
        return self

    def compiled(self) -> list[tuple[SignalRule, re.Pattern[str]]]:
        return [
            (r, re.compile("|".join(f"(?:{p})" for p in r.patterns), re.I)) for r in self.signals
        ]


class SignalHit(BaseModel):
    rule: str
    kind: SignalKind
    utterance: int
    matched: str
    weight: float
    reason: str
    suppressed: str | None = None  # why it does not count (negated / reported speech)

    @property
    def counted(self) -> bool:
        return self.suppressed is None


def load_signals(path: str | Path) -> SignalSet:
    """Read and validate a signals YAML; errors name the file, the path inside it and why."""
    return load_model(path, SignalSet)


@lru_cache(maxsize=16)
def cached_signals(path: str) -> tuple[SignalSet, list[tuple[SignalRule, re.Pattern[str]]]]:
    signals = load_signals(path)
    return signals, signals.compiled()


def _clause_prefix(text: str, start: int) -> str:
    """Text from the start of the clause holding position ``start`` up to it."""
    cut = 0
    for m in _CLAUSE_END.finditer(text, 0, start):
        cut = m.end()
    return text[cut:start]


def _cue_before(prefix: str, cues: CueSet) -> str | None:
    low = prefix.lower()
    for cue in cues.cues:
        window = cues.window if cue.window is None else cue.window
        pos = low.rfind(cue.text.lower())
        if pos >= 0 and len(low) - (pos + len(cue.text)) <= window:
            return cue.text
    return None


def match_text(
    text: str, compiled: list[tuple[SignalRule, re.Pattern[str]]], signals: SignalSet, index: int
) -> list[SignalHit]:
    """Every rule match in one utterance's text, suppressed ones marked with the reason."""
    hits: list[SignalHit] = []
    for rule, pattern in compiled:
        for m in pattern.finditer(text):
            prefix = _clause_prefix(text, m.start())
            suppressed = None
            if rule.negatable:
                if cue := _cue_before(prefix, signals.negation):
                    suppressed = f"negated by {cue!r}"
                elif cue := _cue_before(prefix, signals.hypothetical):
                    suppressed = f"reported or hypothetical ({cue!r})"
            hits.append(
                SignalHit(
                    rule=rule.id,
                    kind=rule.kind,
                    utterance=index,
                    matched=m.group(0),
                    weight=rule.weight,
                    reason=rule.reason,
                    suppressed=suppressed,
                )
            )
            if suppressed is None:
                break  # one counted hit per rule and utterance
    return hits


def match_transcript(
    transcript: Transcript, signals_path: str | Path, customer_roles: set[str], ending_turns: int
) -> list[SignalHit]:
    """Hits of every rule on the utterances of its role (customer roles: ``customer_roles``)."""
    signals, compiled = cached_signals(str(signals_path))
    roles = {"customer": customer_roles, "agent": {"agent"}, "any": None}
    hits: list[SignalHit] = []
    for role_name, role_set in roles.items():
        rules = [(r, p) for r, p in compiled if r.role == role_name]
        if not rules:
            continue
        turns = [
            i
            for i, u in enumerate(transcript.utterances)
            if role_set is None or u.speaker in role_set
        ]
        ending = set(turns[-ending_turns:])
        for i in turns:
            usable = [
                (r, p)
                for r, p in rules
                if r.scope == "anywhere"
                or (r.scope == "ending" and i in ending)
                or (r.scope == "last" and i == turns[-1])
            ]
            hits += match_text(transcript.utterances[i].text, usable, signals, i)
    return sorted(hits, key=lambda h: (h.utterance, h.rule))
