"""Order operators: what must happen before (``order``) or after (``response``) what.

``order``: every occurrence of ``then`` (account details discussed, the customer agrees)
must be preceded by ``first`` (identity verified, risk disclosed), optionally no more than
``max_turns`` utterances / ``max_seconds`` earlier. ``response``: every occurrence of
``trigger`` (the customer complains) must be followed by ``then`` (the agent apologises)
within ``max_turns`` utterances / ``max_seconds``. When the event that makes the rule
relevant never happens, the item is ``if_absent`` (default: not applicable).
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from pipeline.schema import Evidence
from pipeline.scripts_check.operators import (
    CheckRole,
    Context,
    Operator,
    Outcome,
    _phrase_list,
    _Strict,
    evidence,
    phrase_hits,
    register,
    role_undecidable,
    select,
)
from pipeline.text import clauses

IfAbsent = Literal["not_applicable", "pass", "fail"]


class Facts(_Strict):
    """A kind of fact stated, whatever its words: a clause that names one of ``terms`` and
    gives a value (one of ``values``, or a number when ``numbers``), and asks nothing (no
    question cue of the language, ``defaults.yaml`` → ``question_cues``). "您这张卡现在还能用
    八千三百元" and "上个月的还款已经收到了" tell account facts no phrase list names; "您是要查
    账单吗" asks about the account and tells nothing."""

    terms: list[str] = Field(min_length=1)
    values: list[str] = Field(default_factory=list)
    numbers: bool = True  # a number in the clause (digits or Chinese numerals) is a value

    _check_terms = field_validator("terms", "values")(_phrase_list)

    def stated(self, text: str, language: str) -> list[tuple[int, int, str]]:
        """(start, end, what) of each stretch of ``text`` that states such a fact: a clause
        naming a term and giving a value, or whose next clause gives it (ASR puts a comma
        between a topic and what is said of it: "您的积分，是上个月到期自动清零了")."""
        out = []
        parts = clauses(text)
        for k, (a, b, clause) in enumerate(parts):
            term = next((t for t in self.terms if t in clause), None)
            if term is not None and (told := self._told(parts, k, language, term)):
                out.append((a, told[0] or b, f"{term} + {told[1]}"))
        return out

    def _told(
        self, parts: list[tuple[int, int, str]], k: int, language: str, said: str = ""
    ) -> tuple[int | None, str] | None:
        """(end of the next clause when the value is there, else None; the value) that
        clause ``k`` of ``parts`` gives besides the words ``said``, or the clause after it
        when it asks nothing; None when clause ``k`` asks or no value is given."""
        cues, _ = fact_settings(language)
        clause = parts[k][2]
        if any(c in clause for c in cues):
            return None
        if value := self.value(clause.replace(said, " ", 1) if said else clause, language):
            return None, value
        if k + 1 < len(parts) and (value := self.value(parts[k + 1][2], language)):
            return parts[k + 1][1], value
        return None

    def value(self, clause: str, language: str) -> str | None:
        """The value ``clause`` gives (one of ``values``, or a number), or None when it gives
        none or asks (a question cue)."""
        cues, number = fact_settings(language)
        if any(c in clause for c in cues):
            return None
        value = next((v for v in self.values if v in clause), None)
        if value is None and self.numbers:
            value = (n := number.search(clause)) and n.group(0)
        return value or None


class FactSettings(_Strict):
    """``defaults.yaml`` → ``facts.<language>``: what makes a clause a question, and what a
    number looks like."""

    question_cues: list[str] = Field(min_length=1)
    number: str = Field(min_length=1)

    @field_validator("number")
    @classmethod
    def _compiles(cls, v: str) -> str:
        re.compile(v)
        return v


@lru_cache(maxsize=8)
def fact_settings(language: str) -> tuple[tuple[str, ...], re.Pattern]:
    """(question cues, number pattern) of ``language`` (``defaults.yaml`` → ``facts``)."""
    from pipeline.contracts import load_model
    from pipeline.match_config import CHECKS_DEFAULTS

    by_lang = load_model(CHECKS_DEFAULTS, dict[str, FactSettings], section="facts")
    cfg = by_lang.get(language[:2]) or by_lang["en"]
    return tuple(cfg.question_cues), re.compile(cfg.number)


class Event(_Strict):
    """Something said: one of ``phrases`` by ``role`` (similarity >= min_similarity), or a
    fact of the kind ``facts`` names stated in the speaker's own words."""

    role: CheckRole = "agent"
    phrases: list[str] = Field(default_factory=list)
    facts: Facts | None = None  # (no min_similarity: terms and values are said as written)
    min_similarity: float = Field(default=0.8, ge=0, le=1)

    _check = field_validator("phrases")(_phrase_list)

    @model_validator(mode="after")
    def _something(self) -> Event:
        if not self.phrases and self.facts is None:
            raise ValueError("an event needs phrases, facts or both")
        return self

    def describe(self) -> str:
        """The event in a reason: its first phrase, or the kind of fact."""
        if self.phrases:
            return f"{self.phrases[0]!r}…"
        return f"a fact about {'/'.join(self.facts.terms[:3])}…"

    def _tells(self, e: Evidence, language: str) -> bool:
        """A phrase of an event of facts tells one: its clause (with the next, as in
        :meth:`Facts.stated`) gives a value, the phrase's own (已经入账) or another, and asks
        nothing ("您的账单是两千元", not "您的账单是多少" or "我帮您查一下您的账单")."""
        a = e.span_chars[0]
        parts = clauses(e.text)
        k = next((k for k, (x, y, _) in enumerate(parts) if x <= a < y), None)
        return k is not None and self.facts._told(parts, k, language) is not None

    def hits(self, ctx: Context) -> list[tuple[int, Evidence]]:
        """(utterance index, evidence) of every utterance that says it, in call order (an
        utterance that says a phrase is cited for the phrase, else for its first fact)."""
        key = ("event", self.role, tuple(self.phrases), id(self.facts), self.min_similarity)
        if key not in ctx.cache:
            pairs = select(ctx.transcript, self.role, None)
            found = (
                phrase_hits(ctx, self.phrases, pairs, self.min_similarity) if self.phrases else []
            )
            out = {
                i: evidence(ctx, i, u, p, m, f"{self.role} said {p!r} at utterance {i}")
                for i, u, p, m in found
            }
            if self.facts is not None:  # an event of facts told: a phrase counts as one
                out = {i: e for i, e in out.items() if self._tells(e, ctx.language)}
            for i, u in pairs if self.facts is not None else []:
                if i in out:
                    continue
                stated = self.facts.stated(u.text, ctx.language)
                if stated:
                    a, b, what = stated[0]
                    out[i] = Evidence(
                        utterance=i,
                        start=u.start,
                        end=u.end,
                        text=u.text,
                        matched=what,
                        similarity=1.0,
                        speaker=u.speaker,
                        span=u.text[a:b],
                        span_chars=[a, b],
                        reason=f"{self.role} stated a fact ({what}) at utterance {i}",
                    )
            ctx.cache[key] = sorted(out.items(), key=lambda kv: kv[0])
        return ctx.cache[key]


class _OrderBase(Operator):
    then: Event
    max_turns: PositiveInt | None = None
    max_seconds: PositiveFloat | None = None
    if_absent: IfAbsent = "not_applicable"

    def phrases_used(self) -> list[str]:
        return [p for e in self._events() for p in e.phrases]

    def _events(self) -> list[Event]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self, early: Evidence, late: Evidence, ctx: Context) -> bool:
        if self.max_turns is not None and late.utterance - early.utterance > self.max_turns:
            return False
        return not (self.max_seconds is not None and late.start - early.end > self.max_seconds)

    def _close_before(self, firsts: list[Evidence], ctx: Context):
        """A test: is some event of ``firsts`` before a given event and close to it? Built
        once (sorted positions, running latest end), each test is log n (or max_turns)."""
        firsts = sorted(firsts, key=_position)
        keys = [_position(f) for f in firsts]
        latest_end, running = [], float("-inf")
        for f in firsts:
            running = max(running, f.end if f.end is not None else running)
            latest_end.append(running)

        def test(t: Evidence) -> bool:
            n = bisect.bisect_left(keys, _position(t))
            if n == 0:
                return False
            if self.max_turns is not None:  # only the last max_turns utterances can qualify
                for j in range(n - 1, -1, -1):
                    f = firsts[j]
                    if t.utterance - f.utterance > self.max_turns:
                        return False
                    if self._close(f, t, ctx):
                        return True
                return False
            if self.max_seconds is not None:
                return latest_end[n - 1] >= t.start - self.max_seconds
            return True

        return test

    def _gap(self) -> str:
        parts = []
        if self.max_turns is not None:
            parts.append(f"{self.max_turns} turns")
        if self.max_seconds is not None:
            parts.append(f"{self.max_seconds:g} s")
        return f" within {' / '.join(parts)}" if parts else ""

    def _absent(self, what: str) -> Outcome:
        reason = f"{what} never happened"
        ev = [Evidence(reason=reason)]
        if self.if_absent == "not_applicable":
            return Outcome(None, f"not applicable: {reason}", ev, applicable=False)
        return Outcome(self.if_absent == "pass", reason, ev)

    def _undecidable(self, ctx: Context) -> Outcome | None:
        for e in self._events():
            if role_undecidable(ctx.transcript, e.role):
                return Outcome(None, f"no {e.role} utterance (roles not told apart)")
        return None


def _before(a: Evidence, b: Evidence) -> bool:
    """a is said before b (same utterance: by character position)."""
    return _position(a) < _position(b)


def _position(e: Evidence) -> tuple[int, int]:
    return (e.utterance, e.span_chars[0])


class _After:
    """Events in transcript order, to find the first one after a given event that satisfies
    the closeness rule, without comparing every pair (n·log n over a long call)."""

    def __init__(self, events: list[Evidence]):
        self.events = list(events)  # in the order they were found (transcript order)
        order = sorted(range(len(self.events)), key=lambda i: _position(self.events[i]))
        self.sorted = [self.events[i] for i in order]
        self.keys = [_position(e) for e in self.sorted]
        self.suffix_min_start = [0.0] * len(self.sorted)
        low = float("inf")
        for i in range(len(self.sorted) - 1, -1, -1):
            low = min(low, self.sorted[i].start if self.sorted[i].start is not None else low)
            self.suffix_min_start[i] = low

    def first_close(self, t: Evidence, close, rule: _OrderBase) -> Evidence | None:
        n = bisect.bisect_right(self.keys, _position(t))
        if n >= len(self.sorted):
            return None
        only_seconds = rule.max_turns is None and rule.max_seconds is not None
        if only_seconds and self.suffix_min_start[n] - t.end > rule.max_seconds:
            return None  # nothing after t starts soon enough
        for i in range(n, len(self.sorted)):
            x = self.sorted[i]
            if rule.max_turns is not None and x.utterance - t.utterance > rule.max_turns:
                return None
            if close(x):
                return x
        return None


@register
class Order(_OrderBase):
    """``first`` must come before every ``then`` (identity verified before account details)."""

    op: Literal["order"] = "order"
    first: Event
    # the verdict when ``first`` happened and ``then`` never did (None: as ``if_absent``):
    # identity checked and no account news heard after it is an identity check done first
    # (a reviewer passes it; ASR garbles the account news more often than the check)
    if_first_only: IfAbsent | None = None

    def _events(self) -> list[Event]:
        return [self.first, self.then]

    def _first_only(self, first: Evidence) -> Outcome:
        """``if_first_only``'s verdict, citing the ``first`` event heard."""
        reason = (
            f"{first.matched!r} at utterance {first.utterance}; "
            f"'then' ({self.then.describe()}) never happened"
        )
        if self.if_first_only == "not_applicable":
            return Outcome(None, f"not applicable: {reason}", [first], applicable=False)
        return Outcome(self.if_first_only == "pass", reason, [first], support=[first])

    def evaluate(self, ctx: Context) -> Outcome:
        if (out := self._undecidable(ctx)) is not None:
            return out
        firsts = [e for _, e in self.first.hits(ctx)]
        thens = [e for _, e in self.then.hits(ctx)]
        if not thens and firsts and self.if_first_only is not None:
            return self._first_only(firsts[0])
        if not thens:
            return self._absent(f"'then' ({self.then.describe()})")
        close_before = self._close_before(firsts, ctx)
        bad = [t for t in thens if not close_before(t)]
        if not bad:
            t = thens[0]
            f = [f for f in firsts if _before(f, t)][-1]
            reason = (
                f"{f.matched!r} at utterance {f.utterance} before {t.matched!r} at {t.utterance}"
            )
            return Outcome(True, reason, [f, t], support=[f, t])
        t = bad[0]
        later = [f for f in firsts if not _before(f, t)]
        if later:
            reason = (
                f"{t.matched!r} at utterance {t.utterance} came before {later[0].matched!r} "
                f"(utterance {later[0].utterance})"
            )
        elif any(_before(f, t) for f in firsts):
            reason = f"{t.matched!r} at utterance {t.utterance}: 'first' not{self._gap()} before it"
        else:
            reason = f"{t.matched!r} at utterance {t.utterance} without {self.first.describe()} before it"
        t = t.model_copy(update={"reason": f"violates order: {reason}"})
        return Outcome(False, reason, [t, *later[:1]], support=[t])


@register
class Response(_OrderBase):
    """Every ``trigger`` must be followed by ``then`` (apologise after a complaint)."""

    op: Literal["response"] = "response"
    trigger: Event

    def _events(self) -> list[Event]:
        return [self.trigger, self.then]

    def evaluate(self, ctx: Context) -> Outcome:
        if (out := self._undecidable(ctx)) is not None:
            return out
        triggers = [e for _, e in self.trigger.hits(ctx)]
        thens = [e for _, e in self.then.hits(ctx)]
        if not triggers:
            return self._absent(f"trigger ({self.trigger.describe()})")
        answered, unanswered = [], []
        after = _After(thens)
        for t in triggers:
            r = after.first_close(t, lambda x, t=t: self._close(t, x, ctx), self)
            (answered.append((t, r)) if r is not None else unanswered.append(t))
        if not unanswered:
            t, r = answered[0]
            reason = f"{t.matched!r} at utterance {t.utterance} answered by {r.matched!r} at {r.utterance}"
            evs = [e for pair in answered for e in pair]
            return Outcome(True, reason, evs, support=[r for _, r in answered])
        t = unanswered[0]
        reason = (
            f"{len(unanswered)} of {len(triggers)} trigger(s) not followed by "
            f"{self.then.describe()}{self._gap()} (first at utterance {t.utterance})"
        )
        evs = [
            u.model_copy(update={"reason": "not answered: " + (u.reason or "")}) for u in unanswered
        ]
        return Outcome(False, reason, evs, support=unanswered)
