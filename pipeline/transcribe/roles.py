"""Tell agent from customer by content: the side that says the agent's scripted phrases.

The phrase lists (per language) and the matching parameters are data
(``role_phrases.yaml``, validated on load); callers may add phrases, e.g. a rubric's
greeting. Every decision is a :class:`~pipeline.schema.RoleDecision` with its confidence
and the phrases each side matched.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator
from rapidfuzz import fuzz

from pipeline.schema import RoleDecision
from pipeline.text import normalise_for_match
from pipeline.transcribe.hallucination import load_yaml_model

DEFAULT_ROLE_PHRASES = Path(__file__).with_name("role_phrases.yaml")


class RolePhrases(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_agent_channel: int = Field(0, ge=0)
    min_similarity: float = Field(85, ge=0, le=100)
    first_turns: int = Field(6, ge=1)
    last_turns: int = Field(6, ge=0)
    phrases: dict[str, list[str]]

    @field_validator("phrases")
    @classmethod
    def _non_empty(cls, phrases: dict[str, list[str]]) -> dict[str, list[str]]:
        for language, items in phrases.items():
            if not items or any(not normalise_for_match(p) for p in items):
                raise ValueError(f"{language}: phrase list is empty or has an empty phrase")
        return phrases

    def all_phrases(self, extra: list[str] | None = None) -> list[str]:
        """Every language's phrases plus ``extra``, normalised and de-duplicated."""
        seen: dict[str, None] = {}
        for phrase in [p for items in self.phrases.values() for p in items] + list(extra or []):
            if norm := normalise_for_match(phrase):
                seen[norm] = None
        return list(seen)


@lru_cache(maxsize=8)
def load_role_phrases(path: str | Path = DEFAULT_ROLE_PHRASES) -> RolePhrases:
    return load_yaml_model(RolePhrases, path)


@dataclass
class SideScore:
    side: Hashable  # a channel number or a speaker label
    score: float = 0.0
    hits: list[str] = field(default_factory=list)


def score_side(turns: list[str], phrases: list[str], config: RolePhrases) -> SideScore:
    """Sum of best similarities (0-1) of the phrases found in a side's first and last turns."""
    if len(turns) > config.first_turns + config.last_turns:
        turns = turns[: config.first_turns] + turns[len(turns) - config.last_turns :]
    text = " ".join(normalise_for_match(t) for t in turns)
    result = SideScore(side=None)
    for phrase in phrases:
        if phrase in text:
            similarity = 100.0
        elif len(text) >= len(phrase):  # else partial_ratio would find the text in the phrase
            similarity = fuzz.partial_ratio(phrase, text)
        else:
            similarity = 0.0
        if similarity >= config.min_similarity:
            result.score += similarity / 100
            result.hits.append(phrase)
    return result


def rank_sides(
    turns_by_side: dict[Hashable, list[str]],
    extra_phrases: list[str] | None = None,
    config: RolePhrases | None = None,
) -> list[SideScore]:
    """Sides scored by agent phrases, best first (ties keep the input order)."""
    config = config or load_role_phrases()
    phrases = config.all_phrases(extra_phrases)
    scores = []
    for side, turns in turns_by_side.items():
        scored = score_side(turns, phrases, config)
        scored.side = side
        scores.append(scored)
    return sorted(scores, key=lambda s: -s.score)


def margin_confidence(best: float, second: float) -> float:
    """0.5 for no evidence either way, towards 1 as the best side's lead grows."""
    return round(0.5 + 0.5 * (best - second) / (best + second + 1.0), 3)


def _detail(ranked: list[SideScore], name: str) -> str:
    return "; ".join(
        f"{name} {s.side}: {s.score:.2f} ({', '.join(repr(h) for h in s.hits) or 'no phrase'})"
        for s in ranked
    )


def decide_agent_channel(
    turns_by_channel: dict[int, list[str]],
    extra_phrases: list[str] | None = None,
    config: RolePhrases | None = None,
) -> RoleDecision:
    """Which channel is the agent, from which one says the agent phrases."""
    config = config or load_role_phrases()
    ranked = rank_sides(turns_by_channel, extra_phrases, config)
    best, second = ranked[0], (ranked[1] if len(ranked) > 1 else SideScore(None))
    detail = _detail(ranked, "channel")
    if best.score <= second.score:
        channel = config.default_agent_channel
        return RoleDecision(
            method="default",
            agent_channel=channel,
            confidence=0.5,
            detail=f"agent phrases do not tell the channels apart, default channel {channel}; "
            + detail,
        )
    return RoleDecision(
        method="content",
        agent_channel=int(best.side),
        confidence=margin_confidence(best.score, second.score),
        detail=detail,
    )


def decide_agent_speaker(
    turns_by_speaker: dict[str, list[str]],
    extra_phrases: list[str] | None = None,
    config: RolePhrases | None = None,
) -> tuple[str | None, RoleDecision]:
    """(agent label, decision) among diarized speakers, listed in order of first speech.

    Without any phrase evidence the first speaker is taken as the agent (agents open calls)
    with confidence 0.5; a single speaker is the agent only when it says agent phrases.
    """
    config = config or load_role_phrases()
    ranked = rank_sides(turns_by_speaker, extra_phrases, config)
    best, second = ranked[0], (ranked[1] if len(ranked) > 1 else SideScore(None))
    detail = _detail(ranked, "speaker")
    if len(ranked) == 1 and best.score == 0:
        return None, RoleDecision(method="diarization", confidence=0.0, detail=detail)
    if best.score <= second.score:
        first = next(iter(turns_by_speaker))
        decision = RoleDecision(
            method="diarization",
            confidence=0.5,
            detail=f"agent phrases do not tell the speakers apart, first speaker {first}; "
            + detail,
            agent_speaker=first,
        )
        return first, decision
    decision = RoleDecision(
        method="diarization",
        confidence=margin_confidence(best.score, second.score),
        detail=detail,
        agent_speaker=str(best.side),
    )
    return str(best.side), decision
