"""Drop Whisper hallucinations: text over silence, hold music and IVR, and repetition loops.

The rules are data (``hallucinations.yaml``, validated on load); this module is the one
engine that applies them. Every dropped segment comes back with the rule that dropped it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.contracts import ContractError, load_model
from pipeline.text import normalise_for_match
from pipeline.transcribe.segments import AsrSegment

DEFAULT_RULES = Path(__file__).with_name("hallucinations.yaml")


class RulesError(ContractError):
    """A rules YAML file that does not validate: file, path inside it, reason."""


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    no_speech_prob: float = Field(0.6, ge=0, le=1)
    no_speech_avg_logprob: float = Field(-1.0, le=0)
    min_avg_logprob: float = Field(-1.5, le=0)
    max_compression_ratio: float = Field(2.4, gt=0)
    max_repeats: int = Field(2, ge=1)


class HallucinationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    always: list[str] = Field(default_factory=list)
    when_unsure: list[str] = Field(default_factory=list)
    unsure_no_speech_prob: float = Field(0.3, ge=0, le=1)
    unsure_avg_logprob: float = Field(-0.7, le=0)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @field_validator("always", "when_unsure")
    @classmethod
    def _normalise(cls, phrases: list[str]) -> list[str]:
        out = [normalise_for_match(p) for p in phrases]
        if any(not p for p in out):
            raise ValueError("a phrase is empty after normalisation")
        return out


def load_yaml_model(model: type[BaseModel], path: str | Path) -> BaseModel:
    """Read and validate a YAML file; :class:`RulesError` names the file, path and reason."""
    return load_model(path, model, error=RulesError)


@lru_cache(maxsize=8)
def load_rules(path: str | Path = DEFAULT_RULES) -> HallucinationRules:
    return load_yaml_model(HallucinationRules, path)


@dataclass
class Dropped:
    """A segment the filter removed, and why (kept in the transcript's provenance)."""

    segment: AsrSegment
    rule: str
    reason: str

    def as_record(self) -> dict:
        s = self.segment
        record = {"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text}
        if s.channel is not None:
            record["channel"] = s.channel
        return record | {"rule": self.rule, "reason": self.reason}


def check_segment(
    segment: AsrSegment, rules: HallucinationRules, previous: list[str] | None = None
) -> tuple[str, str] | None:
    """(rule, reason) when ``segment`` is a hallucination, else None.

    ``previous`` are the normalised texts of the segments kept before it on the same channel.
    """
    t = rules.thresholds
    norm = normalise_for_match(segment.text)
    if not norm:
        return "empty", "no words after normalisation"
    for phrase in rules.always:
        if phrase in norm:
            return "phrase", f"contains the known hallucination {phrase!r}"
    unsure = (
        segment.no_speech_prob >= rules.unsure_no_speech_prob
        or segment.avg_logprob <= rules.unsure_avg_logprob
    )
    if unsure and norm in rules.when_unsure:
        return "unsure_phrase", (
            f"{norm!r} with no_speech_prob {segment.no_speech_prob:.2f}, "
            f"avg_logprob {segment.avg_logprob:.2f}"
        )
    if (
        segment.no_speech_prob >= t.no_speech_prob
        and segment.avg_logprob <= t.no_speech_avg_logprob
    ):
        return "no_speech", (
            f"no_speech_prob {segment.no_speech_prob:.2f} >= {t.no_speech_prob} and "
            f"avg_logprob {segment.avg_logprob:.2f} <= {t.no_speech_avg_logprob}"
        )
    if segment.avg_logprob < t.min_avg_logprob:
        return "low_logprob", f"avg_logprob {segment.avg_logprob:.2f} < {t.min_avg_logprob}"
    if segment.compression_ratio > t.max_compression_ratio:
        return "repetition", (
            f"compression ratio {segment.compression_ratio:.2f} > {t.max_compression_ratio}"
        )
    if (
        previous
        and len(previous) >= t.max_repeats
        and all(p == norm for p in previous[-t.max_repeats :])
    ):
        return "repeated_line", f"the same line more than {t.max_repeats} times in a row"
    return None


def filter_segments(
    segments: list[AsrSegment], rules: HallucinationRules | None = None
) -> tuple[list[AsrSegment], list[Dropped]]:
    """Split one channel's segments (in time order) into kept and dropped."""
    rules = rules or load_rules()
    kept: list[AsrSegment] = []
    dropped: list[Dropped] = []
    previous: list[str] = []
    for segment in segments:
        verdict = check_segment(segment, rules, previous)
        if verdict is None:
            kept.append(segment)
            previous.append(normalise_for_match(segment.text))
        else:
            dropped.append(Dropped(segment, *verdict))
    return kept, dropped
