"""Which channel or diarized speaker is the agent: the side that says the agent's phrases.

One phrase file (``agent_phrases.yaml``, validated on load) and one matcher, the rubric's
(:func:`pipeline.scripts_check.match.phrase_match`: ASR-robust, filler-tolerant, with a
negation guard), serve both paths:

* stereo, one speaker per channel: :func:`decide_agent_channel` ranks the channels by the
  phrases said in their first and last turns (callers may add phrases, e.g. a rubric's
  greeting); a :class:`~pipeline.schema.RoleDecision` with its confidence and hits;
* mono, diarized: :func:`identify_roles` combines explained signals with a confidence:

  - ``phrases``: who says the agent phrases (weighted, half weight out of position);
  - ``voiceprint``: cosine of each speaker's embedding with the enrolled voiceprint of the
    manifest's agent (or the best of all enrolled agents when the manifest names none);
  - ``first_speaker``: a weak prior that the agent opens an inbound call.

  ``confidence = sum_k w_k * r_k * (support_k(agent) - max_other support_k) / sum_k w_k``
  over the signals present (r: reliability in [0, 1]). Below ``threshold`` every role is
  ``unknown`` and the call goes to review rather than being scored against the wrong speaker.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.contracts import load_model
from pipeline.schema import RoleDecision, Transcript, Utterance
from pipeline.scripts_check.match import phrase_match
from pipeline.text import detect_language, normalise
from pipeline.transcribe.diarize.base import Diarization, Turn

PHRASES_FILE = Path(__file__).with_name("agent_phrases.yaml")
SIGNAL_WEIGHTS = {"phrases": 1.0, "voiceprint": 1.0, "first_speaker": 0.15}
# voiceprint cosine -> support: same-speaker GE2E cosines sit above ~0.85, others below ~0.75
VOICEPRINT_LOW, VOICEPRINT_HIGH = 0.70, 0.85


class AgentPhrase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1)
    kind: Literal["greeting", "identity", "closing", "service"]
    weight: float = Field(gt=0, le=5)
    position: Literal["start", "end", "any"] = "any"
    # this phrase's own threshold (a short phrase where one homophone is another word)
    min_similarity: float | None = Field(None, gt=0, le=1)


class AgentPhrases(BaseModel):
    """``agent_phrases.yaml``: the phrases per language and how they are searched."""

    model_config = ConfigDict(extra="forbid")

    min_similarity: float = Field(0.8, gt=0, le=1)
    first_turns: int = Field(6, ge=1)
    last_turns: int = Field(6, ge=0)
    default_agent_channel: int = Field(0, ge=0)
    phrases: dict[str, list[AgentPhrase]]

    @field_validator("phrases")
    @classmethod
    def _non_empty(cls, phrases: dict[str, list[AgentPhrase]]) -> dict[str, list[AgentPhrase]]:
        for language, items in phrases.items():
            if not items:
                raise ValueError(f"{language}: the phrase list is empty")
            for item in items:
                if not len(normalise(item.text, language)):
                    raise ValueError(f"{language}: {item.text!r} is empty once normalised")
        return phrases

    def all_phrases(self, extra: Sequence[str] = ()) -> list[tuple[str, AgentPhrase]]:
        """(language, phrase) for every listed phrase, then ``extra`` ones (weight 1, any
        position, language from their script)."""
        out = [(lang, p) for lang, items in self.phrases.items() for p in items]
        for text in extra:
            if text.strip():
                out.append(
                    (
                        detect_language(text) or "en",
                        AgentPhrase(text=text, kind="greeting", weight=1.0),
                    )
                )
        return out


@lru_cache(maxsize=8)
def load_agent_phrases(path: str | Path = PHRASES_FILE) -> AgentPhrases:
    """The agent phrases from YAML, validated; errors name the file, the path and the reason."""
    return load_model(path, AgentPhrases)


def _phrases(config: AgentPhrases | str | Path | None) -> AgentPhrases:
    if isinstance(config, AgentPhrases):
        return config
    return load_agent_phrases(config or PHRASES_FILE)


def phrase_similarity(phrase: str, text: str, language: str, threshold: float = 0.0) -> float:
    """How well ``text`` says ``phrase`` (0-1, the rubric matcher's measure); 0.0 below
    ``threshold``."""
    found = phrase_match(phrase, text, language, threshold)
    return found.similarity if found is not None else 0.0


# --------------------------------------------------------------------------- stereo channels


@dataclass
class SideScore:
    side: Hashable  # a channel number or a speaker label
    score: float = 0.0
    hits: list[str] = field(default_factory=list)


def score_side(
    turns: list[str], phrases: list[tuple[str, AgentPhrase]], config: AgentPhrases
) -> SideScore:
    """Sum of weight x best similarity of the phrases said in a side's first and last turns."""
    if len(turns) > config.first_turns + config.last_turns:
        turns = turns[: config.first_turns] + turns[len(turns) - config.last_turns :]
    result = SideScore(side=None)
    for language, phrase in phrases:
        threshold = phrase.min_similarity or config.min_similarity
        best = max(
            (phrase_similarity(phrase.text, t, language, threshold) for t in turns), default=0.0
        )
        if best > 0:
            result.score += phrase.weight * best
            result.hits.append(phrase.text)
    return result


def rank_sides(
    turns_by_side: dict[Hashable, list[str]],
    extra_phrases: Sequence[str] | None = None,
    config: AgentPhrases | None = None,
) -> list[SideScore]:
    """Sides scored by agent phrases, best first (ties keep the input order)."""
    config = _phrases(config)
    phrases = config.all_phrases(extra_phrases or ())
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
    extra_phrases: Sequence[str] | None = None,
    config: AgentPhrases | None = None,
) -> RoleDecision:
    """Which channel is the agent, from which one says the agent phrases."""
    config = _phrases(config)
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
    extra_phrases: Sequence[str] | None = None,
    config: AgentPhrases | None = None,
) -> tuple[str | None, RoleDecision]:
    """(agent label, decision) among speakers by their texts alone, in order of first speech.

    Without any phrase evidence the first speaker is taken as the agent (agents open calls)
    with confidence 0.5; a single speaker is the agent only when it says agent phrases.
    Diarized calls with timings and embeddings use :func:`identify_roles`.
    """
    config = _phrases(config)
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


# --------------------------------------------------------------------------- diarized speakers


class SignalContribution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signal: str
    weight: float
    reliability: float = Field(ge=0, le=1)
    support: dict[str, float]  # speaker -> how much this signal says "agent"
    contribution: float  # its share of the final confidence
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    detail: str = ""


class RoleAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    roles: dict[str, Literal["agent", "customer", "unknown"]]  # diarization label -> role
    agent_speaker: str | None
    confidence: float = Field(ge=0, le=1)
    threshold: float
    needs_review: bool
    signals: list[SignalContribution] = Field(default_factory=list)

    def role_of(self, speaker: str) -> str:
        return self.roles.get(speaker, "unknown")

    def to_role_decision(self) -> RoleDecision:
        parts = [f"{s.signal}={s.contribution:+.2f}" for s in self.signals]
        return RoleDecision(
            method="diarization",
            confidence=round(self.confidence, 3),
            detail=f"agent={self.agent_speaker}; " + ", ".join(parts),
        )


TextInput = Transcript | Sequence[Utterance] | Sequence[tuple[float, float, str]]


def _timed_texts(texts: TextInput) -> list[tuple[float, float, str]]:
    if isinstance(texts, Transcript):
        texts = texts.utterances
    out = []
    for item in texts:
        if isinstance(item, Utterance):
            out.append((item.start, item.end, item.text))
        else:
            start, end, text = item
            out.append((float(start), float(end), str(text)))
    return out


def _speaker_at(turns: Sequence[Turn], start: float, end: float) -> str | None:
    """Speaker with the most overlap with [start, end] (nearest turn when none overlaps)."""
    overlap: dict[str, float] = {}
    for t in turns:
        ov = min(end, t.end) - max(start, t.start)
        if ov > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + ov
    if overlap:
        return max(overlap, key=overlap.get)
    if not turns:
        return None
    mid = (start + end) / 2
    return min(turns, key=lambda t: min(abs(t.start - mid), abs(t.end - mid))).speaker


def _phrase_signal(
    turns, texts, phrases: AgentPhrases, speakers, duration
) -> SignalContribution | None:
    hits: dict[str, float] = dict.fromkeys(speakers, 0.0)
    evidence = []
    all_phrases = phrases.all_phrases()
    for i, (start, end, text) in enumerate(texts):
        speaker = _speaker_at(turns, start, end)
        if speaker is None:
            continue
        rel = start / duration if duration else 0.0
        for language, ph in all_phrases:
            sim = phrase_similarity(
                ph.text, text, language, ph.min_similarity or phrases.min_similarity
            )
            if sim <= 0:
                continue
            weight = ph.weight * sim
            if (ph.position == "start" and rel > 0.3) or (ph.position == "end" and rel < 0.7):
                weight *= 0.5  # right words, unusual place: weaker evidence
            hits[speaker] = hits.get(speaker, 0.0) + weight
            evidence.append(
                {
                    "utterance": i,
                    "start": start,
                    "end": end,
                    "speaker": speaker,
                    "text": text,
                    "matched": ph.text,
                    "kind": ph.kind,
                    "similarity": round(sim, 3),
                    "weight": round(weight, 3),
                }
            )
    total = sum(hits.values())
    if total <= 0:
        return None
    support = {s: round(h / total, 4) for s, h in hits.items()}
    return SignalContribution(
        signal="phrases",
        weight=SIGNAL_WEIGHTS["phrases"],
        reliability=round(1 - np.exp(-total), 4),
        support=support,
        contribution=0.0,
        evidence=evidence,
        detail=f"{len(evidence)} agent-phrase hits, total weight {total:.2f}",
    )


def _voiceprint_signal(embeddings, voiceprints, manifest_agent_id) -> SignalContribution | None:
    if not embeddings or not voiceprints:
        return None
    if manifest_agent_id is not None:
        if manifest_agent_id not in voiceprints:
            return None
        candidates = {manifest_agent_id: voiceprints[manifest_agent_id]}
    else:
        candidates = voiceprints
    sims: dict[str, float] = {}
    best_agent: dict[str, str] = {}
    for speaker, emb in embeddings.items():
        e = np.asarray(emb, dtype=np.float32)
        for agent_id, vp in candidates.items():
            v = np.asarray(getattr(vp, "embedding", vp), dtype=np.float32)
            sim = float(e @ v / (np.linalg.norm(e) * np.linalg.norm(v) + 1e-9))
            if sim > sims.get(speaker, -1.0):
                sims[speaker], best_agent[speaker] = sim, agent_id
    support = {
        s: float(np.clip((v - VOICEPRINT_LOW) / (VOICEPRINT_HIGH - VOICEPRINT_LOW), 0, 1))
        for s, v in sims.items()
    }
    ordered = sorted(support.values(), reverse=True)
    spread = ordered[0] - (ordered[1] if len(ordered) > 1 else 0.0)
    return SignalContribution(
        signal="voiceprint",
        weight=SIGNAL_WEIGHTS["voiceprint"],
        reliability=round(float(np.clip(spread, 0, 1)), 4),
        support={s: round(v, 4) for s, v in support.items()},
        contribution=0.0,
        evidence=[
            {"speaker": s, "agent_id": best_agent[s], "cosine": round(v, 4)}
            for s, v in sims.items()
        ],
        detail=("manifest agent " + manifest_agent_id)
        if manifest_agent_id
        else "best of all enrolled agents",
    )


def identify_roles(
    turns: Diarization | Sequence[Turn],
    utterance_texts: TextInput | None = None,
    *,
    agent_phrases: AgentPhrases | str | Path | None = None,
    voiceprints: Mapping[str, Any] | None = None,
    manifest_agent_id: str | None = None,
    speaker_embeddings: Mapping[str, Sequence[float]] | None = None,
    direction: str | None = None,
    threshold: float = 0.6,
) -> RoleAssignment:
    """Assign agent/customer to diarization labels from combined signals.

    ``utterance_texts``: a Transcript, Utterances, or ``(start, end, text)`` triples; each is
    attributed to the speaker whose turns overlap it most. ``voiceprints``: agent id ->
    Voiceprint (or raw embedding). ``speaker_embeddings`` default to the Diarization's.
    """
    if isinstance(turns, Diarization):
        speaker_embeddings = speaker_embeddings or turns.embeddings
        duration = turns.duration
        turns = turns.turns
    else:
        duration = None
    turns = sorted(turns, key=lambda t: t.start)
    speakers = list(dict.fromkeys(t.speaker for t in turns))
    duration = duration or max((t.end for t in turns), default=0.0)
    agent_phrases = _phrases(agent_phrases)
    texts = _timed_texts(utterance_texts) if utterance_texts is not None else []

    signals = [
        s
        for s in (
            _phrase_signal(turns, texts, agent_phrases, speakers, duration) if texts else None,
            _voiceprint_signal(speaker_embeddings, voiceprints, manifest_agent_id),
        )
        if s is not None
    ]
    if speakers and direction in (None, "inbound"):
        signals.append(
            SignalContribution(
                signal="first_speaker",
                weight=SIGNAL_WEIGHTS["first_speaker"],
                reliability=0.5 if direction is None else 1.0,
                support={s: float(s == speakers[0]) for s in speakers},
                contribution=0.0,
                detail=f"{speakers[0]} speaks first ({direction or 'direction unknown'})",
            )
        )
    if not speakers or not signals:
        return RoleAssignment(
            roles=dict.fromkeys(speakers, "unknown"),
            agent_speaker=None,
            confidence=0.0,
            threshold=threshold,
            needs_review=True,
            signals=signals,
        )

    score = {
        s: sum(sig.weight * sig.reliability * sig.support.get(s, 0.0) for sig in signals)
        for s in speakers
    }
    agent = max(speakers, key=lambda s: score[s])
    total_weight = sum(sig.weight for sig in signals if sig.signal != "first_speaker") or sum(
        sig.weight for sig in signals
    )
    for sig in signals:
        others = [sig.support.get(s, 0.0) for s in speakers if s != agent]
        margin = sig.support.get(agent, 0.0) - (max(others) if others else 0.0)
        sig.contribution = round(sig.weight * sig.reliability * margin / total_weight, 4)
    confidence = float(np.clip(sum(sig.contribution for sig in signals), 0.0, 1.0))
    if confidence < threshold:
        roles = dict.fromkeys(speakers, "unknown")
        agent_out = None
    else:
        roles = {s: ("agent" if s == agent else "customer") for s in speakers}
        agent_out = agent
    return RoleAssignment(
        roles=roles,
        agent_speaker=agent_out,
        confidence=round(confidence, 4),
        threshold=threshold,
        needs_review=agent_out is None,
        signals=signals,
    )
