"""Typed, JSON-serialisable outputs of every stage (the public contracts of DESIGN.md).

Transcript JSON is the output of ``callqa transcribe`` and the input of ``callqa score``;
Result JSON is the output of ``callqa score`` and what the store keeps per call. Both may
grow new optional fields; existing fields never change meaning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline import __version__

Role = Literal["agent", "customer", "unknown"]
RiskLevel = Literal["low", "medium", "high"]


class ContractError(ValueError):
    """A file that does not follow a public contract; names the file and the reason."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = str(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- transcript


class Word(_Model):
    word: str
    start: float
    end: float
    probability: float | None = None


class UtteranceSentiment(_Model):
    """Per-utterance sentiment (complaint risk fills it in for scored turns; the review app's
    timeline draws it). Probabilities sum to 1; ``model`` names the scorer and its version."""

    negative: float = Field(ge=0, le=1)
    neutral: float = Field(ge=0, le=1)
    positive: float = Field(ge=0, le=1)
    model: str

    @property
    def label(self) -> str:
        trio = {"negative": self.negative, "neutral": self.neutral, "positive": self.positive}
        return max(trio, key=trio.__getitem__)


class Utterance(_Model):
    speaker: Role = "unknown"
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    confidence: float | None = None
    words: list[Word] | None = None
    channel: int | None = None
    sentiment: UtteranceSentiment | None = None

    @model_validator(mode="after")
    def _end_after_start(self) -> Utterance:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class RoleDecision(_Model):
    """How agent and customer were told apart, and how sure the decision is."""

    method: Literal["manifest", "option", "content", "default", "diarization", "text", "none"]
    agent_channel: int | None = None
    confidence: float = Field(ge=0, le=1)
    detail: str = ""


class Provenance(_Model):
    """What produced a stage's output, so any stored score can be reproduced."""

    pipeline_version: str = __version__
    asr_model: str | None = None
    compute_type: str | None = None
    device: str | None = None
    vad: bool | None = None
    language_setting: str | None = None
    roles: RoleDecision | None = None
    source: str | None = None  # audio file or transcript file the call came from
    source_sha256: str | None = None


class Transcript(_Model):
    call_id: str = ""
    language: str = "zh"
    duration: float | None = None
    utterances: list[Utterance] = Field(default_factory=list)
    produced_by: Provenance | None = None

    @model_validator(mode="after")
    def _derive_defaults(self) -> Transcript:
        if self.duration is None:
            self.duration = max((u.end for u in self.utterances), default=0.0)
        return self

    def role_utterances(self, role: Role | None) -> list[tuple[int, Utterance]]:
        """(index, utterance) pairs of one role, or of every role when role is None."""
        return [(i, u) for i, u in enumerate(self.utterances) if role is None or u.speaker == role]

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(indent=2, exclude_none=True, **kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        """Read Transcript JSON; derive a missing ``call_id`` from the file name."""
        return _load_json(cls, path, default_call_id=Path(path).stem)


# --------------------------------------------------------------------------- result


class Evidence(_Model):
    """One piece of evidence for an item verdict: where, what was said, what it matched."""

    utterance: int | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    matched: str | None = None
    similarity: float | None = None
    reason: str | None = None


class ItemResult(_Model):
    id: str
    section: str
    title: str | None = None
    passed: bool | None = None
    points: float  # points awarded
    max_points: float | None = None
    critical: bool = False
    needs_review: bool = False
    applicable: bool = True
    reason: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)


class RiskEvidence(_Model):
    utterance: int | None = None
    start: float | None = None
    end: float | None = None
    text: str | None = None
    reason: str
    weight: float | None = None


class Risk(_Model):
    score: float = Field(ge=0, le=1)
    level: RiskLevel
    evidence: list[RiskEvidence] = Field(default_factory=list)
    model: str | None = None


class RubricRef(_Model):
    id: str
    version: int | str
    title: str | None = None
    sha256: str | None = None


class ResultProvenance(Provenance):
    transcript_sha256: str | None = None


class Result(_Model):
    call_id: str
    rubric: RubricRef
    total: float
    max: float
    auto_fail: bool = False
    needs_review: bool = False
    items: list[ItemResult] = Field(default_factory=list)
    risk: Risk | None = None
    produced_by: ResultProvenance | None = None

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(indent=2, exclude_none=True, **kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Result:
        return _load_json(cls, path)


def _load_json(cls: type[_Model], path: str | Path, default_call_id: str | None = None):
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(path, f"cannot read: {exc}") from None
    if not raw.strip():
        raise ContractError(path, "file is empty")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ContractError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(path, f"expected a JSON object, got {type(data).__name__}")
    if default_call_id and not data.get("call_id"):
        data["call_id"] = default_call_id
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ContractError(path, f"{where}: {first['msg']}") from None


# --------------------------------------------------------------------------- archive


class CallJob(_Model):
    """One recording of an archive to process, with the CTI/CDR metadata of its manifest row."""

    call_id: str
    source: str  # path of the recording (or of a transcript JSON)
    agent_id: str | None = None
    agent_name: str | None = None
    team: str | None = None
    started_at: str | None = None
    direction: str | None = None
    agent_channel: int | None = None
    language: str | None = None
    rubric: str | None = None
