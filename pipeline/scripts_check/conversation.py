"""Conversation metrics (silences, interruptions, speech rate, talk ratio, duration) and the
operators that judge them.

:func:`conversation_metrics` is also what the complaint-risk engine takes as its
``metrics`` argument (``long_silences`` and ``agent_interruptions`` are event lists with
``utterance`` indexes). Times come from the utterances (``start`` / ``end``); text
transcripts without real times give no silences or overlaps.

Who was *expected* to speak during a silence: after a customer turn, the agent (it is the
agent's dead air); after an agent question (？/吗/呢/?), the customer; after any other
agent turn, the agent again (the agent holds the floor). A silence is *announced* when the
agent's turn just before it says a hold phrase (请您稍等, please hold).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, model_validator

from pipeline.schema import Evidence, Transcript, Utterance
from pipeline.scripts_check.match import match
from pipeline.scripts_check.operators import (
    CheckRole,
    Context,
    Operator,
    Outcome,
    Within,
    _widener,
    register,
    role_undecidable,
    select,
)
from pipeline.text import normalise

BACKCHANNEL_UNITS = {"zh": 2, "en": 2}  # at most this many units: 好的 / okay right
LONG_SILENCE_S = 10.0
MIN_OVERLAP_S = 0.5
_QUESTION_END = ("？", "?", "吗", "呢", "吧")


@lru_cache(maxsize=1)
def hold_phrase_defaults() -> dict[str, list[str]]:
    """The engine's hold phrases per language (``defaults.yaml`` → ``hold_phrases``): what an
    agent says to announce a wait (请您稍等, please hold)."""
    from pipeline.contracts import read_yaml
    from pipeline.match_config import CHECKS_DEFAULTS

    data = read_yaml(CHECKS_DEFAULTS)[0]["hold_phrases"]
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(p, str) and p.strip() for p in v)
        for v in data.values()
    ):
        raise ValueError(f"{CHECKS_DEFAULTS}: hold_phrases must map a language to phrases")
    return data


def _lang(transcript: Transcript, language: str | None) -> str:
    return (language or transcript.language or "zh")[:2]


def _units(text: str, language: str) -> int:
    """Units of speech: words (en) or characters as spoken (zh). The matcher writes a zh
    numeral as its digits (两万 -> 20000); a rate counts what was said: a numeral's units
    at most as many as its characters (两万: 2, not 5; 三万五: 3; ASR's 8300: 4). Found:
    split 3 m03, "固定额度是两万，我给你临时调到三万五，三十天有效" measured 309 chars/min
    against a 300 limit: 280.8 counted as spoken (87 units -> 79)."""
    norm = normalise(text, language)
    if not language.startswith("zh"):
        return len(norm)
    per_span: dict[tuple[int, int], int] = {}
    for span in norm.spans:
        per_span[span] = per_span.get(span, 0) + 1
    return sum(min(n, b - a) for (a, b), n in per_span.items())


@lru_cache(maxsize=1)
def hold_handover_defaults() -> dict[str, re.Pattern[str]]:
    """Per language, what hands the floor to the customer after a hold phrase
    (``defaults.yaml`` → ``hold_handover``): 先核实一下您的身份，请您报一下身份证号码 asks the
    customer for something; it announces no wait after their answer."""
    from pipeline.contracts import read_yaml
    from pipeline.match_config import CHECKS_DEFAULTS

    data = read_yaml(CHECKS_DEFAULTS)[0].get("hold_handover", {})
    out = {}
    for lang, pattern in data.items():
        try:
            # 请您抱一下: 报 heard 抱; "Can you confirm ..." as ASR capitalises it
            out[lang] = re.compile(_widener(lang)(pattern), re.IGNORECASE)
        except (re.error, TypeError) as exc:
            raise ValueError(f"{CHECKS_DEFAULTS}: hold_handover.{lang}: {exc}") from None
    return out


def _says_hold(u: Utterance, language: str, phrases: list[str]) -> str | None:
    """The hold phrase ``u`` says, unless the agent hands the floor to the customer after it
    in the same turn (:func:`hold_handover_defaults`)."""
    un = normalise(u.text, language)
    handover = hold_handover_defaults().get(language)
    for p in phrases:
        m = match(normalise(p, language), un, language, 0.8)
        if m is None or m.similarity < 0.8:
            continue
        after = u.text[un.spans[m.end - 1][1] :] if 0 < m.end <= len(un.spans) else ""
        if handover is not None and handover.search(after):
            continue
        return p
    return None


def silences(
    transcript: Transcript,
    language: str | None = None,
    min_seconds: float = 2.0,
    hold_phrases: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Gaps of at least ``min_seconds`` where nobody speaks, between two utterances."""
    lang = _lang(transcript, language)
    holds = hold_phrases if hold_phrases is not None else hold_phrase_defaults().get(lang, [])
    order = sorted(range(len(transcript.utterances)), key=lambda k: transcript.utterances[k].start)
    out: list[dict[str, Any]] = []
    last_end, last_idx = None, None
    for pos, k in enumerate(order):
        u = transcript.utterances[k]
        if last_end is not None and u.start - last_end >= min_seconds:
            prev = transcript.utterances[last_idx]
            if prev.speaker == "agent":
                asked = prev.text.rstrip(" 。.!！…").endswith(_QUESTION_END)
                expected = "customer" if asked else "agent"
            elif prev.speaker == "customer":
                expected = "agent"
            else:
                expected = "unknown"
            hold = None
            # the agent's last turn before the gap, if it is at most two utterances back
            back = [
                j
                for j in order[max(0, pos - 2) : pos]
                if transcript.utterances[j].speaker == "agent"
            ]
            if back:
                hold = _says_hold(transcript.utterances[back[-1]], lang, holds)
            out.append(
                {
                    "start": round(last_end, 3),
                    "end": round(u.start, 3),
                    "duration": round(u.start - last_end, 3),
                    "after_utterance": last_idx,
                    "utterance": k,  # the utterance that broke the silence
                    "expected": expected,
                    "hold_announced": hold is not None,
                    "hold_phrase": hold,
                    "hold_utterance": back[-1] if back else None,  # the agent's turn before
                }
            )
        if last_end is None or u.end > last_end:
            last_end, last_idx = u.end, k
    return out


def interruptions(
    transcript: Transcript, language: str | None = None, min_overlap: float = MIN_OVERLAP_S
) -> list[dict[str, Any]]:
    """Turns that start while the other party is still speaking (overlap >= min_overlap);
    short backchannels (嗯 / 好的 / okay) are not interruptions.

    One sweep in start order (n·log n): per speaker, the utterance started so far that ends
    last; a turn interrupts when another speaker's such utterance runs past its start by at
    least ``min_overlap``. The interrupted utterance reported is the one overlapped longest.
    """
    lang = _lang(transcript, language)
    utts = transcript.utterances
    order = sorted(range(len(utts)), key=lambda k: (utts[k].start, k))
    longest: dict[str, tuple[float, int]] = {}  # speaker -> (end, index), started before
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(order):
        # utterances starting at the same instant do not interrupt each other
        same = [order[pos]]
        while (
            pos + len(same) < len(order)
            and utts[order[pos + len(same)]].start == utts[same[0]].start
        ):
            same.append(order[pos + len(same)])
        for k in same:
            b = utts[k]
            if b.speaker == "unknown" or _units(b.text, lang) <= BACKCHANNEL_UNITS.get(lang, 2):
                continue
            best: tuple[float, int] | None = None
            for speaker, (end, j) in longest.items():
                if speaker in (b.speaker, "unknown") or end <= b.start:
                    continue
                if best is None or (end, -j) > (best[0], -best[1]):
                    best = (end, j)
            if best is None:
                continue
            overlap = min(best[0], b.end) - b.start
            if overlap >= min_overlap:
                a = utts[best[1]]
                out.append(
                    {
                        "utterance": k,
                        "by": b.speaker,
                        "interrupted": best[1],
                        "interrupted_speaker": a.speaker,
                        "start": round(b.start, 3),
                        "overlap": round(overlap, 3),
                    }
                )
        for k in same:
            u = utts[k]
            held = longest.get(u.speaker)
            if held is None or u.end > held[0]:
                longest[u.speaker] = (u.end, k)
        pos += len(same)
    out.sort(key=lambda x: x["utterance"])
    return out


def speech_rate(
    transcript: Transcript, role: str = "agent", language: str | None = None
) -> dict[str, Any]:
    """Units per minute of ``role``'s speech: characters (zh) or words (en)."""
    lang = _lang(transcript, language)
    pairs = transcript.role_utterances(None if role == "any" else role)
    seconds = sum(u.end - u.start for _, u in pairs)
    units = sum(_units(u.text, lang) for _, u in pairs)
    rate = units / (seconds / 60) if seconds > 0 else None
    return {
        "rate": round(rate, 1) if rate is not None else None,
        "unit": "chars/min" if lang == "zh" else "words/min",
        "units": units,
        "seconds": round(seconds, 3),
        "utterances": len(pairs),
    }


def talk_time(transcript: Transcript) -> dict[str, float]:
    out: dict[str, float] = {}
    for u in transcript.utterances:
        out[u.speaker] = out.get(u.speaker, 0.0) + (u.end - u.start)
    return {k: round(v, 3) for k, v in out.items()}


def conversation_metrics(
    transcript: Transcript,
    language: str | None = None,
    *,
    long_silence_s: float = LONG_SILENCE_S,
    min_overlap_s: float = MIN_OVERLAP_S,
) -> dict[str, Any]:
    """Every conversation metric of a call, JSON-serialisable (also the risk engine's
    ``metrics``): ``duration``, ``silences`` (>= 2 s), ``long_silences`` (>= long_silence_s),
    ``max_silence``, ``interruptions``, ``agent_interruptions``, ``speech_rate`` per role,
    ``talk_time`` and ``talk_ratio`` (share of agent + customer speaking time)."""
    lang = _lang(transcript, language)
    sil = silences(transcript, lang)
    inter = interruptions(transcript, lang, min_overlap_s)
    tt = talk_time(transcript)
    spoken = tt.get("agent", 0.0) + tt.get("customer", 0.0)
    return {
        "duration": transcript.duration,
        "silences": sil,
        "long_silences": [s for s in sil if s["duration"] >= long_silence_s],
        "max_silence": max((s["duration"] for s in sil), default=0.0),
        "interruptions": inter,
        "agent_interruptions": [i for i in inter if i["by"] == "agent"],
        "speech_rate": {r: speech_rate(transcript, r, lang) for r in ("agent", "customer")},
        "talk_time": tt,
        "talk_ratio": {
            r: (round(tt.get(r, 0.0) / spoken, 4) if spoken else None)
            for r in ("agent", "customer")
        },
    }


# --------------------------------------------------------------------------- operators


def _in_window(transcript: Transcript, within: Within | None) -> set[int] | None:
    return None if within is None else {i for i, _ in select(transcript, "any", within)}


def _agent_spoke_last(t: Transcript, s: dict, language: str) -> bool:
    """Whether the agent's turn before silence ``s`` is what came last before it (or only a
    customer's backchannel came after it: 好, 嗯): a wait announced in other words is judged
    only there (a question answered before the gap announces no wait)."""
    k, last = s["hold_utterance"], s["after_utterance"]
    if k is None:
        return False
    between = t.utterances[last]
    from pipeline.scripts_check.semantic import units

    return k == last or len(units(between.text)) <= BACKCHANNEL_UNITS.get(language[:2], 2)


def _judge_hold(ctx: Context, s: dict) -> None:
    """Mark silence ``s`` announced when the agent's turn before it announces a wait in
    other words (the paraphrase judge's ``hold`` exemplars: 您先别挂, 我去问问仓库)."""
    from pipeline.scripts_check.semantic import judge_hold

    hit = judge_hold(ctx.transcript.utterances[s["hold_utterance"]], ctx.language, ctx.cache)
    if hit is not None:
        s["hold_announced"] = True
        s["hold_phrase"] = (
            f"paraphrase judge: '{hit.clause}' ~ '{hit.positive}' {hit.similarity:.3f}, "
            f"margin {hit.margin:.3f} over '{hit.negative}'"
        )


@register
class Silence(Operator):
    """Dead air: at most ``max_count`` silences longer than ``max_seconds`` where ``role``
    was expected to speak. An announced hold (``hold_phrases``; engine defaults 请您稍等 /
    please hold) is allowed up to ``max_hold_seconds``."""

    op: Literal["silence"] = "silence"
    role: CheckRole = "agent"
    max_seconds: PositiveFloat = 10.0
    max_count: NonNegativeInt = 0
    hold_phrases: list[str] | None = None
    max_hold_seconds: PositiveFloat | None = 60.0
    within: Within | None = None

    def phrases_used(self) -> list[str]:
        return list(self.hold_phrases or [])

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        window = _in_window(t, self.within)
        found = silences(t, ctx.language, min(2.0, self.max_seconds), self.hold_phrases)
        bad, held = [], []
        for s in found:
            if s["duration"] <= self.max_seconds:
                continue
            if self.role != "any" and s["expected"] != self.role:
                continue
            if window is not None and s["utterance"] not in window:
                continue
            if not s["hold_announced"] and ctx.judge and _agent_spoke_last(t, s, ctx.language):
                _judge_hold(ctx, s)
            ok_hold = s["hold_announced"] and (
                self.max_hold_seconds is None or s["duration"] <= self.max_hold_seconds
            )
            (held if ok_hold else bad).append(s)
        evs = [self._ev(t, s, False) for s in bad] + [self._ev(t, s, True) for s in held]
        reason = (
            f"{len(bad)} silence(s) over {self.max_seconds:g} s with {self.role} expected "
            f"to speak (allowed {self.max_count})"
            + (f"; {len(held)} announced hold(s) allowed" if held else "")
        )
        return Outcome(len(bad) <= self.max_count, reason, evs or [Evidence(reason=reason)])

    @staticmethod
    def _ev(t: Transcript, s: dict, held: bool) -> Evidence:
        u = t.utterances[s["utterance"]]
        why = (
            f"hold announced ({s['hold_phrase']!r})"
            if held
            else ("no hold announced" if not s["hold_announced"] else "announced hold too long")
        )
        return Evidence(
            utterance=s["after_utterance"],
            start=s["start"],
            end=s["end"],
            text=t.utterances[s["after_utterance"]].text,
            reason=f"{s['duration']:.1f} s silence, {s['expected']} expected to speak; {why}; "
            f"broken by {u.speaker} at utterance {s['utterance']}",
            duration=s["duration"],
            expected=s["expected"],
            hold_announced=s["hold_announced"],
        )


@register
class Interruption(Operator):
    """抢话: at most ``max_count`` turns where ``role`` cut in while the other party was
    speaking, overlapping at least ``min_overlap`` seconds (backchannels ignored)."""

    op: Literal["interruption"] = "interruption"
    role: CheckRole = "agent"
    min_overlap: PositiveFloat = MIN_OVERLAP_S
    max_count: NonNegativeInt = 0
    within: Within | None = None

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        window = _in_window(t, self.within)
        found = [
            x
            for x in interruptions(t, ctx.language, self.min_overlap)
            if (self.role == "any" or x["by"] == self.role)
            and (window is None or x["utterance"] in window)
        ]
        evs = []
        for x in found:
            u = t.utterances[x["utterance"]]
            evs.append(
                Evidence(
                    utterance=x["utterance"],
                    start=u.start,
                    end=u.end,
                    text=u.text,
                    reason=f"{x['by']} cut in on {x['interrupted_speaker']} (utterance "
                    f"{x['interrupted']}), {x['overlap']:.1f} s overlap",
                    overlap=x["overlap"],
                    speaker=u.speaker,
                )
            )
        reason = (
            f"{len(found)} interruption(s) by {self.role} with >= {self.min_overlap:g} s overlap "
            f"(allowed {self.max_count})"
        )
        return Outcome(len(found) <= self.max_count, reason, evs or [Evidence(reason=reason)])


class _Range(Operator):
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _range(self):
        if self.min is None and self.max is None:
            raise ValueError("needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} > max {self.max:g}")
        return self

    def _judge(
        self, value: float, what: str, unit: str, ev: Evidence, tolerance: float = 0.0
    ) -> Outcome:
        lo = self.min if self.min is not None else float("-inf")
        hi = self.max if self.max is not None else float("inf")
        ok = lo <= value <= hi
        rng = f"[{self.min if self.min is not None else '-'}, {self.max if self.max is not None else '-'}]"
        reason = f"{what} {value:g} {unit} {'within' if ok else 'outside'} {rng}"
        if not ok and lo * (1 - tolerance) <= value <= hi * (1 + tolerance):
            ok = True
            reason += f", within the {tolerance:.0%} measuring tolerance: passed"
        ev.reason = reason
        return Outcome(ok, reason, [ev])


@register
class SpeechRate(_Range):
    """Speech rate of ``role`` in characters per minute (zh) or words per minute (en), over
    its utterances' durations; not applicable with less than ``min_speech_seconds``."""

    op: Literal["speech_rate"] = "speech_rate"
    role: CheckRole = "agent"
    min_speech_seconds: PositiveFloat = 10.0
    within: Within | None = None
    # a rate measured from ASR text and times: within this share beyond a bound it passes
    # (the rate is an estimate, and an agent's pay follows the verdict)
    tolerance: float = Field(default=0.0, ge=0, le=0.5)

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        pairs = select(t, self.role, self.within)
        sub = Transcript(call_id=t.call_id, language=ctx.language, utterances=[u for _, u in pairs])
        r = speech_rate(sub, "any", ctx.language)
        if r["seconds"] < self.min_speech_seconds or r["rate"] is None:
            reason = f"not applicable: {r['seconds']:g} s of {self.role} speech (< {self.min_speech_seconds:g})"
            return Outcome(None, reason, [Evidence(reason=reason)], applicable=False)
        fastest = max(
            pairs, key=lambda p: _units(p[1].text, ctx.language) / max(p[1].end - p[1].start, 1e-3)
        )
        i, u = fastest
        ev = Evidence(
            utterance=i,
            start=u.start,
            end=u.end,
            text=u.text,
            rate=r["rate"],
            unit=r["unit"],
            seconds=r["seconds"],
            units=r["units"],
        )
        return self._judge(r["rate"], f"{self.role} speech rate", r["unit"], ev, self.tolerance)


@register
class TalkRatio(_Range):
    """Share (0–1) of agent + customer speaking time that ``role`` speaks."""

    op: Literal["talk_ratio"] = "talk_ratio"
    role: Literal["agent", "customer"] = "agent"
    max: float | None = Field(default=None, ge=0, le=1)
    min: float | None = Field(default=None, ge=0, le=1)

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        tt = talk_time(t)
        spoken = tt.get("agent", 0.0) + tt.get("customer", 0.0)
        if spoken <= 0:
            return Outcome(None, "no speech", [Evidence(reason="no speech")], applicable=False)
        ratio = round(tt.get(self.role, 0.0) / spoken, 4)
        ev = Evidence(reason="", ratio=ratio, talk_time=tt)
        return self._judge(ratio, f"{self.role} talk ratio", "", ev)


@register
class Duration(_Range):
    """Call duration in seconds between ``min`` and ``max``."""

    op: Literal["duration"] = "duration"
    units_label: ClassVar[str] = "s"

    def evaluate(self, ctx: Context) -> Outcome:
        d = float(ctx.transcript.duration or 0.0)
        return self._judge(round(d, 3), "call duration", "s", Evidence(start=0.0, end=d))
