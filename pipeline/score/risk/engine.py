"""One engine: utterance sentiment + explicit signals + the dialogue's shape → Risk.

Features (:data:`FEATURES`): customer negativity (mean, max, start, end, last turn, trend),
positive ending, agent answers the customer rejected, repeated asks, unanswered questions,
who speaks last, metrics, per signal kind the capped sum of counted signal weights, and the
risk logit of the conversation-level model trained on real helpdesk dialogues
(:mod:`pipeline.score.risk.dialogue`, configured by ``dialogue``), which also predicts the
customer's mean satisfaction.

With a fitted calibration (``weights`` in ``models/risk/calibration-v<N>.yaml``, written by
``callqa train risk`` / ``models/calibrate_risk.py``): z = bias + Σ wᵢ·xᵢ over those features.
Without: z = the configuration's prior weights (``rubrics/risk/model.yaml``) + Σ_kind capped
signal sums. score = sigmoid(a·z + b). Every term that moves the score leaves evidence.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.schema import ContractError, Risk, RiskEvidence, Transcript, UtteranceSentiment
from pipeline.score.risk.config import (
    DEFAULT_CONFIG,
    Calibration,
    RiskConfig,
    load_calibration,
    load_risk_config,
)
from pipeline.score.risk.dialogue import load_dialogue_model
from pipeline.score.risk.scorers import get_scorer
from pipeline.score.risk.signals import SignalHit, match_transcript
from pipeline.text import detect_language

_QUESTION = re.compile(
    r"[?？]\s*$|[吗呢么]\s*[。.!！]?\s*$|怎么|为什么|什么时候|多久|能不能|可不可以|是不是|有没有|几天|"
    r"^(why|how|when|what|where|can|could|will|is|are|do|does|did)\b",
    re.IGNORECASE,
)


def call_language(transcript: Transcript, config: RiskConfig) -> str:
    """The call's language: by share of CJK characters in its text (Transcript defaults to
    ``zh`` when a file does not say), else the declared one, else the first configured."""
    lang = (transcript.language or "").lower().split("-")[0]
    guess = detect_language("".join(u.text for u in transcript.utterances))
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


# conversation features (names of RiskFeatures.values); signal kinds enter as "signal.<kind>"
FEATURES = (
    "neg_mean",
    "neg_max",
    "neg_start",
    "neg_end",
    "neg_last",
    "pos_end",
    "trend",
    "rejected_answers",
    "repetition",
    "unanswered",
    "ends_with_customer",
    "customer_turns",
    "long_silence",
    "interruption",
    "dialogue",
)
# a customer block whose removal moves the dialogue model's risk logit less than this is not cited
DIALOGUE_EVIDENCE_LOGIT = 0.05


@dataclass
class RiskFeatures:
    """Everything the score is made of, for explanation, benchmarks and recalibration."""

    language: str
    values: dict[str, float] = field(default_factory=dict)
    signal_sums: dict[str, float] = field(default_factory=dict)
    negativity: dict[int, float] = field(default_factory=dict)  # utterance -> P(neg)
    sentiment: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    hits: list[SignalHit] = field(default_factory=list)
    evidence: list[RiskEvidence] = field(default_factory=list)
    scorer_id: str = ""
    dialogue_id: str = ""
    satisfaction: float | None = None  # the dialogue model's mean satisfaction, -2..2
    z: float = 0.0

    def vector(self, caps: dict[str, float]) -> dict[str, float]:
        """Every feature by name, signal kinds as capped sums (``signal.<kind>``)."""
        out = {name: float(self.values.get(name, 0.0)) for name in FEATURES}
        for kind, total in self.signal_sums.items():
            cap = caps.get(kind, math.inf)
            out[f"signal.{kind}"] = max(-cap, min(cap, total))
        return out


def compute_features(
    transcript: Transcript,
    metrics: dict[str, Any] | None,
    config: RiskConfig,
    calibration: Calibration | None = None,
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
    fitted = calibration.weights if calibration is not None else None

    def wt(name: str) -> float:
        """The weight that moves the score: fitted when the calibration has weights."""
        if fitted is not None:
            return fitted.get(name, 0.0)
        return getattr(w, name) if not name.startswith("signal.") else 1.0

    trios = scorer.sentiment([utts[i].text for i in cust]) if cust else []
    f.sentiment = dict(zip(cust, trios, strict=True))
    f.negativity = {i: t[0] for i, t in f.sentiment.items()}
    # one-character acknowledgements (嗯, 好, ok) say nothing about the customer's mood
    kept = [i for i in cust if _content_chars(utts[i].text) >= 2] or cust
    probs = [f.negativity[i] for i in kept]
    v = f.values
    if probs:
        n_end = conv.ending_turns
        end, start = probs[-n_end:], probs[:n_end]
        pos_end = [f.sentiment[i][2] for i in kept[-n_end:]]
        half = max(1, len(probs) // 2)
        v["neg_mean"] = sum(probs) / len(probs)
        v["neg_max"] = max(probs)
        v["neg_start"] = sum(start) / len(start)
        v["neg_end"] = sum(end) / len(end)
        v["neg_last"] = probs[-1]
        v["pos_end"] = sum(pos_end) / len(pos_end)
        v["trend"] = (
            (sum(probs[half:]) / len(probs[half:]) - sum(probs[:half]) / half)
            if len(probs) > 1
            else 0.0
        )
    else:
        v.update(neg_mean=0.0, neg_max=0.0, neg_start=0.0, neg_end=0.0, neg_last=0.0, pos_end=0.0)
        v["trend"] = 0.0
    for i, p in f.negativity.items():
        if p >= conv.evidence_negativity:
            ev(i, f"customer dissatisfaction {p:.2f} ({scorer.id})", wt("neg_max") * p)
    if v["trend"] >= conv.trend_evidence and cust:
        ev(
            cust[-1],
            f"negativity rises through the call (+{v['trend']:.2f})",
            wt("trend") * v["trend"],
        )

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
            ev(i, f"customer repeats turn {best[1]} (similarity {best[0]:.2f})", wt("repetition"))
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
                ev(i, "customer question left without an agent reply", wt("unanswered"))
    v["unanswered"] = min(unanswered, caps.get("unanswered", math.inf))
    v["customer_turns"] = math.log1p(sum(1 for s, _ in blocks if s in roles))

    # explicit signals
    f.hits = match_transcript(transcript, config.signals_path(lang), roles, conv.ending_turns)
    last = next((i for i in range(len(utts) - 1, -1, -1) if utts[i].text.strip()), None)
    thanked_last = any(h.counted and h.kind == "resolved" and h.utterance == last for h in f.hits)
    v["ends_with_customer"] = float(last is not None and last in cust and not thanked_last)
    if v["ends_with_customer"]:
        ev(last, "the call ends on the customer, with no agent reply", wt("ends_with_customer"))
    for h in f.hits:
        if not h.counted:
            continue
        f.signal_sums[h.kind] = f.signal_sums.get(h.kind, 0.0) + h.weight
        ev(h.utterance, f"{h.reason}: {h.matched!r}", h.weight * wt(f"signal.{h.kind}"))

    # agent answers the customer rejected: a customer message right after an agent message
    # that pushes back (rejection / rhetorical / unresolved signal, or reads negative)
    pushback = {h.utterance for h in f.hits if h.counted and h.kind in _PUSHBACK}
    rejected = 0
    for b, (speaker, members) in enumerate(blocks):
        if speaker not in roles or b == 0 or blocks[b - 1][0] != "agent":
            continue
        hit = next((i for i in members if i in pushback), None)
        if hit is None and b >= 2:  # a negative turn after an answer, not the opening complaint
            hit = next(
                (i for i in members if f.negativity.get(i, 0.0) >= conv.evidence_negativity),
                None,
            )
        if hit is not None:
            rejected += 1
            ev(hit, "customer rejects the agent's answer", wt("rejected_answers"))
    v["rejected_answers"] = min(rejected, caps.get("rejected_answers", math.inf))

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
        weight = wt("long_silence") if name == "long silence" else wt("interruption")
        for item in items[:3] or ([None] if count else []):
            idx = item.get("utterance") if isinstance(item, dict) else None
            idx = idx if isinstance(idx, int) and 0 <= idx < len(utts) else None
            ev(idx, f"{name} ({count} in the call, from metrics)", weight)

    if config.dialogue is not None:
        dialogue_features(f, transcript, roles, config, wt, ev)
    f.z = logit(f, config, calibration)
    return f


def dialogue_features(
    f: RiskFeatures, transcript: Transcript, roles: set[str], config: RiskConfig, wt, ev
) -> None:
    """The dialogue model's risk logit and satisfaction; the customer turns whose removal
    moves that logit most are evidence (weight: the change times the feature's weight)."""
    model = load_dialogue_model(config.dialogue_path())
    utts = transcript.utterances
    turns = [("customer" if u.speaker in roles else "agent", u.text) for u in utts]
    d = model.score(turns)
    f.values["dialogue"] = d.z
    f.satisfaction = d.satisfaction
    f.dialogue_id = model.id
    for b, delta in d.moved:
        if abs(delta) < DIALOGUE_EVIDENCE_LOGIT:
            continue
        members = d.blocks[b][1]
        i = max(members, key=lambda k: len(utts[k].text))  # the block's longest turn
        verb = "raises" if delta > 0 else "lowers"
        ev(
            i,
            f"customer turn {verb} the dialogue risk ({delta:+.2f} logit, {model.id})",
            wt("dialogue") * delta,
        )


_PUSHBACK = {"rejection", "rhetorical", "unresolved"}


def logit(f: RiskFeatures, config: RiskConfig, calibration: Calibration | None = None) -> float:
    """z of the fitted weights when the calibration carries them, else of the config's priors."""
    x = f.vector(config.caps)
    if calibration is not None and calibration.weights is not None:
        return calibration.bias + sum(
            wt * x.get(name, 0.0) for name, wt in calibration.weights.items()
        )
    w = config.weights
    return (
        w.bias
        + sum(
            getattr(w, name) * value for name, value in x.items() if not name.startswith("signal.")
        )
        + sum(value for name, value in x.items() if name.startswith("signal."))
    )


def check_calibration(cal: Calibration, config: RiskConfig, language: str, scorer_id: str) -> None:
    """A calibration with fitted weights belongs to the features and scorer it was fitted on."""
    if cal.weights is None:
        return
    where = cal.source or f"calibration v{cal.version}"
    unknown = [
        n
        for n in cal.weights
        if n not in FEATURES and not (n.startswith("signal.") and n[7:] in config.caps)
    ]
    if unknown:
        raise ContractError(where, f"weights for unknown features {unknown}")
    dialogue_id = load_dialogue_model(config.dialogue_path()).name if config.dialogue else None
    if "dialogue" in cal.weights and cal.dialogue != dialogue_id:
        raise ContractError(
            where,
            f"fitted on the dialogue model {cal.dialogue}, the configuration uses "
            f"{dialogue_id}: refit it (models/train_risk_dialogue.py --calibrate)",
        )
    fitted_with = (cal.scorers or {}).get(language)
    if fitted_with and fitted_with != scorer_id:
        raise ContractError(
            where,
            f"fitted with the {language} scorer {fitted_with}, the configuration uses "
            f"{scorer_id}: refit it (models/calibrate_risk.py or callqa train risk)",
        )


def annotate(transcript: Transcript, f: RiskFeatures) -> None:
    """Per-utterance sentiment of the scored (customer) turns, on the transcript itself."""
    for i, (neg, neu, pos) in f.sentiment.items():
        transcript.utterances[i].sentiment = UtteranceSentiment(
            negative=round(neg, 4), neutral=round(neu, 4), positive=round(pos, 4), model=f.scorer_id
        )


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def calibrated(z: float, cal: Calibration, language: str | None = None) -> float:
    a, b = cal.platt(language)
    return _sigmoid(a * z + b)


def assess(
    transcript: Transcript,
    metrics: dict[str, Any] | None = None,
    config_path: str | Path = DEFAULT_CONFIG,
    calibration: Calibration | None = None,
) -> Risk:
    config = load_risk_config(config_path)
    cal = calibration or load_calibration(config.calibration)
    f = compute_features(transcript, metrics, config, cal)
    check_calibration(cal, config, f.language, f.scorer_id)
    annotate(transcript, f)
    score = round(calibrated(f.z, cal, f.language), 4)
    # what moved the score: a finding whose feature has no weight (v4 gives the per-turn
    # sentiment none) is not evidence of this score
    moved = [e for e in f.evidence if e.weight]
    evidence = sorted(moved, key=lambda e: -abs(e.weight or 0))[: config.conversation.max_evidence]
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
    model = f"{config.id}-v{config.version}+cal-v{cal.version}+{f.scorer_id}"
    return Risk(
        score=score,
        level=config.levels.level(score),
        evidence=evidence,
        model=model + (f"+{f.dialogue_id}" if f.dialogue_id else ""),
        satisfaction=round(f.satisfaction, 3) if f.satisfaction is not None else None,
    )
