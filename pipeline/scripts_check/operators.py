"""Check operators: the vocabulary of rubric checks, one pydantic model + evaluator each.

A rubric item's ``check`` is a mapping with exactly one operator name as key
(``{required: {...}}``). The loader turns it into a discriminated union over
:data:`OPERATORS` (tag ``op``); a new operator is a subclass of :class:`Operator`
decorated with :func:`register`, nothing else changes.

Evaluation gets a :class:`Context` (the transcript, the language, cached normalised
texts) and returns an :class:`Outcome`: ``passed`` (``None`` when it cannot be decided),
a reason, and evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from pipeline.schema import Evidence, Transcript, Utterance
from pipeline.scripts_check.match import Match, align, match, upper_bound
from pipeline.scripts_check.text import NormText, normalise

CheckRole = Literal["agent", "customer", "unknown", "any"]

OPERATORS: dict[str, type[Operator]] = {}


def register(cls: type[Operator]) -> type[Operator]:
    """Add an operator class to the registry under its ``op`` tag."""
    OPERATORS[cls.model_fields["op"].default] = cls
    return cls


@dataclass
class Outcome:
    passed: bool | None
    reason: str
    evidence: list[Evidence] = field(default_factory=list)
    applicable: bool = True


@dataclass
class Context:
    transcript: Transcript
    language: str

    def norm(self, text: str) -> NormText:
        return normalise(text, self.language)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Within(_Strict):
    """Where a check looks. Turns count utterances of the check's role; seconds are measured
    from the start (0) or the end (``duration``) of the call. Exactly one key."""

    first_turns: PositiveInt | None = None
    last_turns: PositiveInt | None = None
    first_seconds: PositiveFloat | None = None
    last_seconds: PositiveFloat | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Within:
        given = [k for k, v in self.__dict__.items() if v is not None]
        if len(given) != 1:
            raise ValueError(
                "needs exactly one of first_turns, last_turns, first_seconds, last_seconds"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        return next(f"{k}={v:g}" for k, v in self.__dict__.items() if v is not None)


def select(
    transcript: Transcript, role: CheckRole, within: Within | None
) -> list[tuple[int, Utterance]]:
    """The (index, utterance) pairs a check looks at."""
    pairs = transcript.role_utterances(None if role == "any" else role)
    if within is None:
        return pairs
    if within.first_turns is not None:
        return pairs[: within.first_turns]
    if within.last_turns is not None:
        return pairs[-within.last_turns :]
    if within.first_seconds is not None:
        return [(i, u) for i, u in pairs if u.start < within.first_seconds]
    end = transcript.duration or max((u.end for u in transcript.utterances), default=0.0)
    return [(i, u) for i, u in pairs if u.end > end - within.last_seconds]


def role_undecidable(transcript: Transcript, role: CheckRole) -> bool:
    """True when the call has no utterance of ``role`` but has some of unknown role
    (roles were not told apart), so a role-bound check cannot be decided."""
    if role in ("any", "unknown"):
        return False
    speakers = {u.speaker for u in transcript.utterances}
    return role not in speakers and "unknown" in speakers


class Operator(_Strict):
    """Base of every check operator."""

    op: str
    default_min_similarity: ClassVar[float] = 0.8

    def evaluate(self, ctx: Context) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError


def _phrase_list(value: list[str]) -> list[str]:
    for k, phrase in enumerate(value):
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"phrase {k} is empty")
    return value


class _PhraseCheck(Operator):
    role: CheckRole = "agent"
    phrases: list[str] = Field(min_length=1)
    within: Within | None = None
    min_similarity: float | None = Field(default=None, ge=0, le=1)

    _check_phrases = field_validator("phrases")(_phrase_list)

    @property
    def threshold(self) -> float:
        return (
            self.min_similarity if self.min_similarity is not None else self.default_min_similarity
        )

    def scope(self) -> str:
        where = f", {self.within.describe()}" if self.within else ""
        return f"{self.role} utterances{where}"

    def _best(
        self, ctx: Context, pairs: list[tuple[int, Utterance]], threshold: float
    ) -> tuple[float, int, Utterance, str, Match] | None:
        """Best (similarity, index, utterance, phrase, match) with similarity >= threshold."""
        best = None
        for phrase in self.phrases:
            p = ctx.norm(phrase)
            for i, u in pairs:
                m = match(p, ctx.norm(u.text), ctx.language, threshold)
                if (
                    m is not None
                    and m.similarity >= threshold
                    and (best is None or m.similarity > best[0])
                ):
                    best = (m.similarity, i, u, phrase, m)
        return best

    def _near(
        self, ctx: Context, pairs: list[tuple[int, Utterance]], top: int = 4
    ) -> tuple[float, int, Utterance, str, Match] | None:
        """Best alignment at any similarity, aligning only the ``top`` most promising pairs."""
        ranked = []
        for phrase in self.phrases:
            p = ctx.norm(phrase)
            for i, u in pairs:
                ranked.append((upper_bound(p, ctx.norm(u.text), ctx.language), i, u, phrase))
        ranked.sort(key=lambda r: -r[0])
        best = None
        for _, i, u, phrase in ranked[:top]:
            m = align(ctx.norm(phrase), ctx.norm(u.text), ctx.language)
            if best is None or m.similarity > best[0]:
                best = (m.similarity, i, u, phrase, m)
        return best


def evidence(
    ctx: Context, index: int, utt: Utterance, phrase: str, m: Match, reason: str | None = None
) -> Evidence:
    """Evidence for one alignment: utterance, times, text, phrase, similarity and span."""
    a, b = ctx.norm(utt.text).original_span(m.start, m.end)
    return Evidence(
        utterance=index,
        start=utt.start,
        end=utt.end,
        text=utt.text,
        matched=phrase,
        similarity=m.similarity,
        reason=reason,
        speaker=utt.speaker,
        span=utt.text[a:b],
        span_chars=[a, b],
        differences=m.explain(),
    )


@register
class Required(_PhraseCheck):
    """Passes when one of ``phrases`` was said (similarity >= min_similarity) by ``role``
    within the window. A failure carries the best near-miss and why it failed."""

    op: Literal["required"] = "required"

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        pairs = select(t, self.role, self.within)
        hit = self._best(ctx, pairs, self.threshold)
        if hit is not None:
            sim, i, u, phrase, m = hit
            ev = evidence(
                ctx, i, u, phrase, m, f"said at utterance {i} ({sim:.2f} >= {self.threshold:g})"
            )
            return Outcome(True, ev.reason, [ev])
        return self._failure(ctx, pairs)

    def _failure(self, ctx: Context, pairs: list[tuple[int, Utterance]]) -> Outcome:
        t = ctx.transcript
        if not pairs:
            reason = f"no {self.scope()} to look at"
            return Outcome(False, reason, [Evidence(reason=reason)])
        near = self._near(ctx, pairs)
        evs: list[Evidence] = []
        sim = near[0] if near else 0.0
        reason = f"not said: best similarity {sim:.2f} < {self.threshold:g} in {self.scope()}"
        if near is not None:
            _, i, u, phrase, m = near
            evs.append(evidence(ctx, i, u, phrase, m, f"near miss: {m.explain()}"))
        # Said, but in the wrong place or by the wrong speaker? Say so (it guides review).
        looked = {i for i, _ in pairs}
        outside = [
            (i, u)
            for i, u in t.role_utterances(None if self.role == "any" else self.role)
            if i not in looked
        ]
        elsewhere = self._best(ctx, outside, self.threshold) if self.within else None
        if elsewhere is not None:
            _, i, u, phrase, m = elsewhere
            why = f"said at utterance {i}, outside {self.within.describe()}"
            evs.append(evidence(ctx, i, u, phrase, m, why))
            reason += f"; {why}"
        elif self.role != "any":
            others = [(i, u) for i, u in enumerate(t.utterances) if u.speaker != self.role]
            by_other = self._best(ctx, others, self.threshold)
            if by_other is not None:
                _, i, u, phrase, m = by_other
                why = f"said by {u.speaker} at utterance {i}, not by {self.role}"
                evs.append(evidence(ctx, i, u, phrase, m, why))
                reason += f"; {why}"
        if not evs:
            evs.append(Evidence(reason=reason))
        return Outcome(False, reason, evs)


@register
class Forbidden(_PhraseCheck):
    """Passes when none of ``phrases`` was said by ``role`` within the window.

    Stricter than ``required`` by default (min_similarity 0.9: for a phrase of three
    characters only a homophone is tolerated; two characters must be exact). Matching is
    literal, with no negation analysis: "我不是不知道" still contains 不知道. Polite forms that
    contain a forbidden phrase ("不知道您现在方便吗", "i don't know if") are listed in
    ``exclude``: a hit whose span lies inside a matched exclusion is not counted (it is
    kept as evidence with the reason)."""

    op: Literal["forbidden"] = "forbidden"
    exclude: list[str] = Field(default_factory=list)
    default_min_similarity: ClassVar[float] = 0.9

    _check_exclude = field_validator("exclude")(_phrase_list)

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        pairs = select(t, self.role, self.within)
        hits: list[Evidence] = []
        excused: list[Evidence] = []
        for i, u in pairs:
            un = ctx.norm(u.text)
            best: tuple[str, Match] | None = None
            for phrase in self.phrases:
                m = match(ctx.norm(phrase), un, ctx.language, self.threshold)
                if (
                    m is not None
                    and m.similarity >= self.threshold
                    and (best is None or m.similarity > best[1].similarity)
                ):
                    best = (phrase, m)
            if best is None:
                continue
            phrase, m = best
            why = self._excused_by(ctx, un, m)
            if why:
                excused.append(evidence(ctx, i, u, phrase, m, f"not counted: inside {why!r}"))
            else:
                hits.append(evidence(ctx, i, u, phrase, m, f"forbidden phrase {phrase!r} said"))
        if hits:
            return Outcome(False, f"forbidden phrase said {len(hits)} time(s)", hits + excused)
        reason = f"none of {len(self.phrases)} forbidden phrases in {len(pairs)} {self.scope()}"
        return Outcome(True, reason, [Evidence(reason=reason), *excused])

    def _excused_by(self, ctx: Context, un: NormText, hit: Match) -> str | None:
        for phrase in self.exclude:
            m = match(ctx.norm(phrase), un, ctx.language, self.threshold)
            if (
                m is not None
                and m.similarity >= self.threshold
                and (m.start <= hit.start and hit.end <= m.end)
            ):
                return phrase
        return None
