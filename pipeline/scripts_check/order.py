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
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

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

IfAbsent = Literal["not_applicable", "pass", "fail"]


class Event(_Strict):
    """Something said: one of ``phrases`` by ``role`` (similarity >= min_similarity)."""

    role: CheckRole = "agent"
    phrases: list[str] = Field(min_length=1)
    min_similarity: float = Field(default=0.8, ge=0, le=1)

    _check = field_validator("phrases")(_phrase_list)

    def hits(self, ctx: Context) -> list[tuple[int, Evidence]]:
        """(utterance index, evidence) of every utterance that says it, in call order."""
        key = ("event", self.role, tuple(self.phrases), self.min_similarity)
        if key not in ctx.cache:
            found = phrase_hits(
                ctx, self.phrases, select(ctx.transcript, self.role, None), self.min_similarity
            )
            ctx.cache[key] = [
                (i, evidence(ctx, i, u, p, m, f"{self.role} said {p!r} at utterance {i}"))
                for i, u, p, m in found
            ]
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

    def _events(self) -> list[Event]:
        return [self.first, self.then]

    def evaluate(self, ctx: Context) -> Outcome:
        if (out := self._undecidable(ctx)) is not None:
            return out
        firsts = [e for _, e in self.first.hits(ctx)]
        thens = [e for _, e in self.then.hits(ctx)]
        if not thens:
            return self._absent(f"'then' ({self.then.phrases[0]!r}…)")
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
            reason = f"{t.matched!r} at utterance {t.utterance} without {self.first.phrases[0]!r}… before it"
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
            return self._absent(f"trigger ({self.trigger.phrases[0]!r}…)")
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
            f"{self.then.phrases[0]!r}…{self._gap()} (first at utterance {t.utterance})"
        )
        evs = [
            u.model_copy(update={"reason": "not answered: " + (u.reason or "")}) for u in unanswered
        ]
        return Outcome(False, reason, evs, support=unanswered)
