"""Which diarized speaker is the agent: combined, explained signals with a confidence.

Signals (each recorded with its per-speaker support, reliability and contribution):

* ``phrases``: who says the agent's scripted phrases (greeting, 工号/identity, closing),
  from agent_phrases.yaml (data, validated on load);
* ``voiceprint``: cosine of each speaker's embedding with the enrolled voiceprint of the
  manifest's agent (or the best of all enrolled agents when the manifest names none);
* ``first_speaker``: a weak prior that the agent opens an inbound call.

``confidence = sum_k w_k * r_k * (support_k(agent) - max_other support_k) / sum_k w_k``
over the signals present (r: reliability in [0, 1]). Below ``threshold`` every role is
``unknown`` and the call goes to review rather than being scored against the wrong speaker.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.contracts import load_model
from pipeline.schema import RoleDecision, Transcript, Utterance
from pipeline.transcribe.diarize.base import Diarization, Turn

PHRASES_FILE = Path(__file__).with_name("agent_phrases.yaml")
SIGNAL_WEIGHTS = {"phrases": 1.0, "voiceprint": 1.0, "first_speaker": 0.15}
# voiceprint cosine -> support: same-speaker GE2E cosines sit above ~0.85, others below ~0.75
VOICEPRINT_LOW, VOICEPRINT_HIGH = 0.70, 0.85


class AgentPhrase(BaseModel):
    text: str = Field(min_length=1)
    kind: Literal["greeting", "identity", "closing", "service"]
    weight: float = Field(gt=0, le=5)
    position: Literal["start", "end", "any"] = "any"


class AgentPhrases(BaseModel):
    min_similarity: float = Field(0.8, gt=0, le=1)
    phrases: dict[str, list[AgentPhrase]]


@lru_cache(maxsize=8)
def _load_phrases_cached(path: str) -> AgentPhrases:
    return load_model(path, AgentPhrases)


def load_agent_phrases(path: str | Path = PHRASES_FILE) -> AgentPhrases:
    """The agent phrase lists (en, zh, ...) from YAML, validated; errors name file and path."""
    return _load_phrases_cached(str(path))


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


_STRIP = re.compile(r"[\W_]+", re.UNICODE)


def _norm(text: str) -> str:
    return _STRIP.sub("", text.lower())


def phrase_similarity(phrase: str, text: str) -> float:
    """Best match of ``phrase`` against any same-length span of ``text`` (0-1)."""
    p, t = _norm(phrase), _norm(text)
    if not p or not t:
        return 0.0
    if p in t:
        return 1.0
    n = len(p)
    if len(t) <= n:
        return difflib.SequenceMatcher(None, p, t).ratio()
    best = 0.0
    for i in range(0, len(t) - n + 1):
        best = max(best, difflib.SequenceMatcher(None, p, t[i : i + n]).ratio())
        if best == 1.0:
            break
    return best


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
    all_phrases = [p for lang in phrases.phrases.values() for p in lang]
    for i, (start, end, text) in enumerate(texts):
        speaker = _speaker_at(turns, start, end)
        if speaker is None:
            continue
        rel = start / duration if duration else 0.0
        for ph in all_phrases:
            sim = phrase_similarity(ph.text, text)
            if sim < phrases.min_similarity:
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
    if isinstance(agent_phrases, (str, Path)) or agent_phrases is None:
        agent_phrases = load_agent_phrases(agent_phrases or PHRASES_FILE)
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
