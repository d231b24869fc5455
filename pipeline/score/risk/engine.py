"""One engine: utterance dissatisfaction + explicit signals + conversation signals → Risk.

z = bias + Σ weight·feature + Σ_kind capped(Σ counted signal weights); score = sigmoid(a·z + b)
with the calibration (a, b) in force. Every term that moves the score leaves evidence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.schema import Risk, RiskEvidence, Transcript
from pipeline.score.risk.config import (
    DEFAULT_CONFIG,
    Calibration,
    RiskConfig,
    load_calibration,
    load_risk_config,
)
from pipeline.score.risk.scorers import get_scorer
from pipeline.score.risk.signals import SignalHit, match_transcript

_CJK = re.compile(r"[\u4e00-\u9fff]")
_QUESTION = re.compile(
    r"[?？]\s*$|[吗呢么]\s*[。.!！]?\s*$|怎么|为什么|什么时候|多久|能不能|可不可以|是不是|有没有|几天|"
    r"^(why|how|when|what|where|can|could|will|is|are|do|does|did)\b",
    re.IGNORECASE,
)


def call_language(transcript: Transcript, config: RiskConfig) -> str:
    """The call's language: by share of CJK characters in its text (Transcript defaults to
    ``zh`` when a file does not say), else the declared one, else the first configured."""
    lang = (transcript.language or "").lower().split("-")[0]
    text = re.sub(r"[\s\d\W_]+", "", "".join(u.text for u in transcript.utterances))
    if text:
        guess = "zh" if len(_CJK.findall(text)) >= 0.3 * len(text) else "en"
        if guess in config.scorers:
            return guess
    return lang if lang in config.scorers else next(iter(config.scorers))


def customer_roles(transcript: Transcript) -> set[str]:
    """Customer turns; without any labelled customer, every non-agent turn stands in."""
    if any(u.speaker == "customer" for u in transcript.utterances):
        return {"customer"}
    return {"unknown"}


# A customer repeating a turn from further back than this is not counted as repeating.
REPEAT_LOOKBACK_TURNS = 50


def _blocks(utts: list) -> list[tuple[str, list[int]]]:
    """Consecutive non-empty turns of one speaker, as (speaker, utterance indices)."""
    blocks: list[tuple[str, list[int]]] = []
    for i, u in enumerate(utts):
        if not u.text.strip():
            continue
        if blocks and blocks[-1][0] == u.speaker:
            blocks[-1][1].append(i)
        else:
            blocks.append((u.speaker, [i]))
    return blocks


def _content_chars(text: str) -> int:
    return len(re.sub(r"[\s\W_]+", "", text))


def _bigrams(text: str) -> set[str]:
    t = re.sub(r"[\s\W_]+", "", text.lower())
    return {t[i : i + 2] for i in range(len(t) - 1)}


def _count(
    metrics: dict[str, Any] | None, keys: tuple[str, ...], min_seconds: float | None
) -> tuple[int, list]:
    """A count from ``metrics`` under any of ``keys``: an int, or a list of events/durations."""
    if not metrics:
        return 0, []
    for key in keys:
        value = metrics.get(key)
        if value is None:
            continue
        if isinstance(value, bool):
            return int(value), []
        if isinstance(value, int | float):
            if min_seconds is not None and key.startswith("max_"):
                return int(value >= min_seconds), []
            return int(value), []
        if isinstance(value, list):
            events = []
            for item in value:
                if isinstance(item, dict) and item.get("hold_announced"):
                    continue  # an announced hold is not dead air
                dur = (
                    item
                    if isinstance(item, int | float)
                    else (item.get("duration") if isinstance(item, dict) else None)
                )
                if isinstance(item, dict) and dur is None and "start" in item and "end" in item:
                    dur = float(item["end"]) - float(item["start"])
                if min_seconds is None or dur is None or dur >= min_seconds:
                    events.append(item)
            return len(events), events
    return 0, []


@dataclass
class RiskFeatures:
    """Everything the score is made of, for explanation, benchmarks and recalibration."""

    language: str
    values: dict[str, float] = field(default_factory=dict)
    signal_sums: dict[str, float] = field(default_factory=dict)
    negativity: dict[int, float] = field(default_factory=dict)  # utterance -> P(neg)
    hits: list[SignalHit] = field(default_factory=list)
    evidence: list[RiskEvidence] = field(default_factory=list)
    scorer_id: str = ""
    z: float = 0.0


def compute_features(
    transcript: Transcript, metrics: dict[str, Any] | None, config: RiskConfig
) -> RiskFeatures:
    lang = call_language(transcript, config)
    conv = config.conversation
    scorer = get_scorer(config.scorers[lang])
    roles = customer_roles(transcript)
    utts = transcript.utterances
    cust = [i for i, u in enumerate(utts) if u.speaker in roles and u.text.strip()]
    f = RiskFeatures(language=lang, scorer_id=scorer.id)

    def ev(i: int | None, reason: str, weight: float) -> None:
        u = utts[i] if i is not None else None
        f.evidence.append(
            RiskEvidence(
                utterance=i,
                start=u.start if u else None,
                end=u.end if u else None,
                text=u.text if u else None,
                reason=reason,
                weight=round(weight, 3),
            )
        )

    w = config.weights
    all_probs = scorer.negativity([utts[i].text for i in cust]) if cust else []
    f.negativity = dict(zip(cust, all_probs, strict=True))
    # one-character acknowledgements (嗯, 好, ok) say nothing about the customer's mood
    probs = [p for i, p in f.negativity.items() if _content_chars(utts[i].text) >= 2] or all_probs
    v = f.values
    if probs:
        end = probs[-conv.ending_turns :]
        half = max(1, len(probs) // 2)
        v["neg_mean"] = sum(probs) / len(probs)
        v["neg_max"] = max(probs)
        v["neg_end"] = sum(end) / len(end)
        v["trend"] = (
            (sum(probs[half:]) / len(probs[half:]) - sum(probs[:half]) / half)
            if len(probs) > 1
            else 0.0
        )
    else:
        v.update(neg_mean=0.0, neg_max=0.0, neg_end=0.0, trend=0.0)
    for i, p in f.negativity.items():
        if p >= conv.evidence_negativity:
            ev(i, f"customer dissatisfaction {p:.2f} ({scorer.id})", w.neg_max * p)
    if v["trend"] >= conv.trend_evidence and cust:
        ev(cust[-1], f"negativity rises through the call (+{v['trend']:.2f})", w.trend * v["trend"])

    # customer repeating themselves
    caps = config.feature_caps
    grams = [(i, _bigrams(utts[i].text)) for i in cust]
    repeats = 0
    for k, (i, gi) in enumerate(grams):
        if len(utts[i].text.strip()) < conv.repeat_min_chars or not gi:
            continue
        # the customer's recent turns only: linear in the call's length, not quadratic
        recent = grams[max(0, k - REPEAT_LOOKBACK_TURNS) : k]
        best = max(
            ((len(gi & gj) / len(gi | gj), j) for j, gj in recent if gj), default=(0.0, None)
        )
        if best[0] >= conv.repeat_similarity:
            repeats += 1
            ev(i, f"customer repeats turn {best[1]} (similarity {best[0]:.2f})", w.repetition)
    v["repetition"] = min(repeats, caps.get("repetition", math.inf))

    # customer questions the agent never answered. Chats split one message into many short
    # turns, so consecutive turns of one speaker form a block; a question is answered when an
    # agent block follows its block.
    blocks = _blocks(utts)
    last_agent_block = max((b for b, (s, _) in enumerate(blocks) if s == "agent"), default=-1)
    unanswered = 0
    for b, (speaker, members) in enumerate(blocks):
        if speaker not in roles or b < last_agent_block:
            continue
        for i in members:
            if _QUESTION.search(utts[i].text.strip()):
                unanswered += 1
                ev(i, "customer question left without an agent reply", w.unanswered)
    v["unanswered"] = min(unanswered, caps.get("unanswered", math.inf))
    v["customer_turns"] = math.log1p(sum(1 for s, _ in blocks if s in roles))

    # explicit signals
    f.hits = match_transcript(transcript, config.signals_path(lang), roles, conv.ending_turns)
    last = next((i for i in range(len(utts) - 1, -1, -1) if utts[i].text.strip()), None)
    thanked_last = any(h.counted and h.kind == "resolved" and h.utterance == last for h in f.hits)
    v["ends_with_customer"] = float(last is not None and last in cust and not thanked_last)
    if v["ends_with_customer"]:
        ev(last, "the call ends on the customer, with no agent reply", w.ends_with_customer)
    for h in f.hits:
        if not h.counted:
            continue
        f.signal_sums[h.kind] = f.signal_sums.get(h.kind, 0.0) + h.weight
        ev(h.utterance, f"{h.reason}: {h.matched!r}", h.weight)

    # metrics from scripts_check
    n, events = _count(
        metrics, ("long_silences", "silences", "max_silence", "max_silence_s"), conv.long_silence_s
    )
    v["long_silence"] = min(n, caps.get("long_silence", math.inf))
    n_int, int_events = _count(metrics, ("agent_interruptions", "interruptions"), None)
    v["interruption"] = min(n_int, caps.get("interruption", math.inf))
    for name, count, items in (
        ("long silence", n, events),
        ("agent interruption", n_int, int_events),
    ):
        weight = w.long_silence if name == "long silence" else w.interruption
        for item in items[:3] or ([None] if count else []):
            idx = item.get("utterance") if isinstance(item, dict) else None
            idx = idx if isinstance(idx, int) and 0 <= idx < len(utts) else None
            ev(idx, f"{name} ({count} in the call, from metrics)", weight)

    z = w.bias + sum(getattr(w, name) * value for name, value in v.items())
    for kind, total in f.signal_sums.items():
        cap = config.caps.get(kind, math.inf)
        z += max(-cap, min(cap, total))
    f.z = z
    return f


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def calibrated(z: float, cal: Calibration) -> float:
    return _sigmoid(cal.a * z + cal.b)


def assess(
    transcript: Transcript,
    metrics: dict[str, Any] | None = None,
    config_path: str | Path = DEFAULT_CONFIG,
    calibration: Calibration | None = None,
) -> Risk:
    config = load_risk_config(config_path)
    cal = calibration or load_calibration(config.calibration)
    f = compute_features(transcript, metrics, config)
    score = round(calibrated(f.z, cal), 4)
    evidence = sorted(f.evidence, key=lambda e: -abs(e.weight or 0))[
        : config.conversation.max_evidence
    ]
    if not evidence:
        cust = sorted(f.negativity.items(), key=lambda kv: -kv[1])
        if cust:
            i, p = cust[0]
            u = transcript.utterances[i]
            evidence = [
                RiskEvidence(
                    utterance=i,
                    start=u.start,
                    end=u.end,
                    text=u.text,
                    weight=0.0,
                    reason=f"no complaint signal; most negative customer turn {p:.2f} ({f.scorer_id})",
                )
            ]
        else:
            evidence = [RiskEvidence(reason="no customer speech in the call", weight=0.0)]
    return Risk(
        score=score,
        level=config.levels.level(score),
        evidence=evidence,
        model=f"{config.id}-v{config.version}+cal-v{cal.version}+{f.scorer_id}",
    )
