"""Check operators: the vocabulary of rubric checks, one pydantic model + evaluator each.

A rubric item's ``check`` is a mapping with exactly one operator name as key
(``{required: {...}}``). The loader (:mod:`pipeline.scripts_check.checks`) turns it into a
discriminated union over :data:`OPERATORS` (tag ``op``); a new operator is a subclass of
:class:`Operator` decorated with :func:`register`, nothing else changes.

This module holds the base classes and the phrase operators (``required``, ``forbidden``,
``keywords``, ``regex``, ``repeated``); :mod:`.order` has ``order`` / ``response``,
:mod:`.conversation` the timing operators, :mod:`.checks` ``all_of`` / ``any_of`` / ``not``.

Evaluation gets a :class:`Context` (the transcript, the language, cached normalised
texts) and returns an :class:`Outcome`: ``passed`` (``None`` when it cannot be decided),
a reason, evidence, and ``support``: the evidence whose words the verdict rests on (the
engine checks their ASR confidence).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from pipeline.match_config import match_settings
from pipeline.schema import Evidence, Transcript, Utterance
from pipeline.scripts_check.content import (
    act_mood_ok,
    act_word_heard,
    adds_negation,
    content_match,
    keys_heard,
    onset_lost,
    phrase_keys,
    plain,
)
from pipeline.scripts_check.match import (
    Match,
    align,
    cue_said,
    match,
    upper_bound,
)
from pipeline.scripts_check.semantic import (
    SemanticHit,
    SemanticPolicy,
    best_paraphrase,
    semantic_near_miss_floor,
)
from pipeline.text import (
    ZH_DIGIT_CHARS,
    NormText,
    clauses,
    homophones,
    is_cjk,
    normalise,
    zh_readings,
)

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
    # evidence the verdict rests on (a required hit, a forbidden hit, a near miss of a
    # failed required phrase): the engine checks the ASR confidence of these spans
    support: list[Evidence] = field(default_factory=list)
    # what the item earns when it is not all or nothing (an ``llm`` answer's points)
    points: float | None = None


@dataclass
class Context:
    transcript: Transcript
    language: str
    cache: dict = field(default_factory=dict)  # per-call memo for operators (metrics, hits)
    # semantic fallback of ``required`` (:mod:`.semantic`): the model + threshold, and
    # whether it applies to checks that do not say (the rubric has a ``semantic:`` block)
    semantic: SemanticPolicy | None = None
    semantic_default: bool = False
    # on only as the language's default (no ``semantic:`` block): phrases with [key words]
    # only, since a cosine alone reads "there is something i can do" as "is there anything
    # else i can do for you" (benchmarks/script_adherence.py --language en)
    semantic_keyed_only: bool = False
    # answers of the call's ``llm`` checks by question hash (pipeline.llm.judge); None: not
    # asked (no backend), and every llm check goes to review saying so
    llm_answers: dict | None = None
    # the paraphrase judge (semantic.judge_best) may pass a required item the rules failed
    judge: bool = True

    def norm(self, text: str) -> NormText:
        return normalise(text, self.language)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Within(_Strict):
    """Where a check looks. Turns count the check role's turns: a run of its utterances with
    no other speaker's between them is one turn (ASR cuts one turn into several utterances
    at its pauses: "Thanks for calling." "Have a good afternoon." "Bye."); seconds are
    measured from the start (0) or the end (``duration``) of the call. Exactly one key."""

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
        return [p for turn in turns(pairs)[: within.first_turns] for p in turn]
    if within.last_turns is not None:
        return [p for turn in turns(pairs)[-within.last_turns :] for p in turn]
    if within.first_seconds is not None:
        return [(i, u) for i, u in pairs if u.start < within.first_seconds]
    end = transcript.duration or max((u.end for u in transcript.utterances), default=0.0)
    return [(i, u) for i, u in pairs if u.end > end - within.last_seconds]


def turns(pairs: list[tuple[int, Utterance]]) -> list[list[tuple[int, Utterance]]]:
    """``pairs`` (index, utterance), in transcript order, grouped into turns: utterances next
    to each other in the transcript (no other utterance between them) of one speaker."""
    out: list[list[tuple[int, Utterance]]] = []
    for i, u in pairs:
        if out and out[-1][-1][0] == i - 1 and out[-1][-1][1].speaker == u.speaker:
            out[-1].append((i, u))
        else:
            out.append([(i, u)])
    return out


def _joined(turn: list[tuple[int, Utterance]]) -> Utterance:
    """The utterances of one turn as one utterance: texts joined by a space."""
    first, last = turn[0][1], turn[-1][1]
    text = " ".join(u.text.strip() for _, u in turn)
    return first.model_copy(update={"end": last.end, "text": text, "words": None})


def _split_turns(out: Outcome, parts: dict[int, list[tuple[int, Utterance]]]) -> Outcome:
    """An outcome found in a joined turn (:func:`_joined`, keyed by its first utterance's
    index) told per utterance: each evidence becomes one per utterance its span covers, with
    that utterance's own text, times and span, and the reasons say which utterances."""

    def split(ev: Evidence) -> list[Evidence]:
        turn = parts.get(ev.utterance) if ev.utterance is not None else None
        if turn is None:
            return [ev]
        a, b = ev.span_chars or (0, sum(len(u.text.strip()) + 1 for _, u in turn))
        where = f"utterances {turn[0][0]}-{turn[-1][0]} (one turn)"
        reason = (ev.reason or "").replace(f"at utterance {ev.utterance}", f"over {where}", 1)
        pieces, offset = [], 0
        for i, u in turn:
            text = u.text.strip()
            lead = len(u.text) - len(u.text.lstrip())
            lo, hi = max(a, offset) - offset, min(b, offset + len(text)) - offset
            if hi > lo:
                lo, hi = lo + lead, hi + lead
                pieces.append(
                    ev.model_copy(
                        update={
                            "utterance": i,
                            "start": u.start,
                            "end": u.end,
                            "text": u.text,
                            "span": u.text[lo:hi],
                            "span_chars": [lo, hi],
                            "reason": reason,
                        }
                    )
                )
            offset += len(text) + 1
        return pieces or [ev.model_copy(update={"reason": reason})]

    evidence = [e for ev in out.evidence for e in split(ev)]
    support = [e for ev in out.support for e in split(ev)]
    reason = evidence[0].reason if evidence else out.reason
    return Outcome(out.passed, reason, evidence, support=support)


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
    # a YAML body that is not a mapping (a list for all_of) goes into this field
    body_field: ClassVar[str | None] = None

    def evaluate(self, ctx: Context) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def phrases_used(self) -> list[str]:
        """Every phrase / keyword of this check (for the segmentation user dictionary)."""
        return list(getattr(self, "phrases", None) or []) + list(getattr(self, "words", None) or [])


def _phrase_list(value: list[str]) -> list[str]:
    for k, phrase in enumerate(value):
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"phrase {k} is empty")
    return value


class _PhraseHit(NamedTuple):
    """A phrase said in one utterance (:meth:`_PhraseCheck._matches`)."""

    similarity: float
    index: int
    utterance: Utterance
    phrase: str
    match: Match
    act_in_utterance: bool
    act_in_turn: bool


class _PhraseCheck(Operator):
    role: CheckRole = "agent"
    phrases: list[str] = Field(min_length=1)
    within: Within | None = None
    min_similarity: float | None = Field(default=None, ge=0, le=1)
    # which calibrated default of the language applies (defaults.yaml ``match.<lang>``)
    threshold_kind: ClassVar[Literal["required", "forbidden"]] = "required"

    _check_phrases = field_validator("phrases")(_phrase_list)

    def threshold_for(self, language: str) -> float:
        """``min_similarity`` if the check sets it, else the language's calibrated default."""
        if self.min_similarity is not None:
            return self.min_similarity
        return getattr(match_settings(language), self.threshold_kind)

    def scope(self) -> str:
        where = f", {self.within.describe()}" if self.within else ""
        return f"{self.role} utterances{where}"

    def _matches(
        self, ctx: Context, pairs: list[tuple[int, Utterance]], threshold: float
    ) -> list[_PhraseHit]:
        """Every (phrase, utterance) said at or above ``threshold`` whose utterance says the
        phrase's key words (``[bracketed]``, :mod:`.content`), in phrase then transcript
        order, each telling whether an act word is heard in the utterance and in its whole
        turn ("Thanks for calling." then "The outage should be fixed by noon." is one turn
        that says no goodbye)."""
        out: list[_PhraseHit] = []
        turn_of = {i: turn for turn in turns(pairs) if len(turn) > 1 for i, _ in turn}
        for phrase in self.phrases:
            p = ctx.norm(phrase)
            keys = phrase_keys(phrase, self.phrases, ctx.language)
            for i, u in pairs:
                said = ctx.norm(u.text)
                m = match(p, said, ctx.language, threshold)
                if (
                    m is None
                    or m.similarity < threshold
                    or not keys_heard(keys, said, ctx.language, aligned=True, phrases=self.phrases)
                ):
                    continue
                whole = ctx.norm(_joined(turn_of[i]).text) if i in turn_of else said
                out.append(
                    _PhraseHit(
                        m.similarity, i, u, phrase, m,
                        act_word_heard(phrase, self.phrases, said, ctx.language),
                        act_word_heard(phrase, self.phrases, whole, ctx.language),
                    )
                )  # fmt: skip
        return out

    def _best(
        self,
        ctx: Context,
        pairs: list[tuple[int, Utterance]],
        threshold: float,
        matches: list[_PhraseHit] | None = None,
    ) -> tuple[float, int, Utterance, str, Match] | None:
        """Best (similarity, index, utterance, phrase, match) of :meth:`_matches` whose turn
        says one of the phrase's act words (the first of equals)."""
        best = None
        for hit in self._matches(ctx, pairs, threshold) if matches is None else matches:
            if hit.act_in_turn and (best is None or hit.similarity > best[0]):
                best = (hit.similarity, hit.index, hit.utterance, hit.phrase, hit.match)
        return best

    @staticmethod
    def _passing(matches: list[_PhraseHit]) -> dict[str, tuple[int, Utterance, Match]]:
        """Each phrase's best (index, utterance, match) of :meth:`_matches` whose utterance
        itself says one of the phrase's act words."""
        out: dict[str, tuple[int, Utterance, Match]] = {}
        for hit in matches:
            if hit.act_in_utterance and (
                hit.phrase not in out or hit.similarity > out[hit.phrase][2].similarity
            ):
                out[hit.phrase] = (hit.index, hit.utterance, hit.match)
        return out

    def _clauses(self, ctx: Context, phrase: str) -> list[NormText]:
        key = ("clauses", phrase)
        if key not in ctx.cache:
            in_words = not ctx.language.startswith("zh")
            parts = [c for *_, c in clauses(phrase, words=in_words)]
            norms = [ctx.norm(c) for c in parts]
            ctx.cache[key] = [n for n in norms if len(n)] if len(parts) > 1 else []
        return ctx.cache[key]

    def _reordered(
        self, ctx: Context, pairs: list[tuple[int, Utterance]], threshold: float
    ) -> tuple[float, int, Utterance, str, Match] | None:
        """A phrase of several clauses said with its clauses in another order (在的亲 for
        亲，在的): length-weighted mean of the clauses' similarities in one utterance."""
        best = None
        for phrase in self.phrases:
            clauses = self._clauses(ctx, phrase)
            if not clauses:
                continue
            total = sum(len(c) for c in clauses)
            for i, u in pairs:
                un = ctx.norm(u.text)
                bound = sum(len(c) * upper_bound(c, un, ctx.language) for c in clauses) / total
                if bound < threshold:
                    continue
                keys = phrase_keys(phrase, self.phrases, ctx.language)
                if not keys_heard(keys, un, ctx.language, aligned=True, phrases=self.phrases):
                    continue
                ms = [align(c, un, ctx.language) for c in clauses]
                if any(op == "negation" for m in ms for op, _, _ in m.ops):
                    continue  # a clause says the opposite
                sim = round(
                    sum(len(c) * m.similarity for c, m in zip(clauses, ms, strict=True)) / total, 4
                )
                if sim >= threshold and (best is None or sim > best[0]):
                    ops = tuple(o for m in ms for o in m.ops) + (("reordered", phrase, ""),)
                    m = Match(sim, min(m.start for m in ms), max(m.end for m in ms), ops)
                    best = (sim, i, u, phrase, m)
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


def semantic_evidence(ctx: Context, hit: SemanticHit) -> Evidence:
    """Evidence for a paraphrase: the span closest in meaning, its cosine, the model."""
    pol = ctx.semantic
    cmp = ">=" if hit.similarity >= pol.min_similarity else "<"
    u = hit.utterance
    return Evidence(
        utterance=hit.index,
        start=u.start,
        end=u.end,
        text=u.text,
        matched=hit.phrase,
        similarity=hit.similarity,
        reason=(
            f"paraphrase: cosine {hit.similarity:.2f} {cmp} {pol.min_similarity:g} "
            f"with model {pol.model}"
        ),
        speaker=u.speaker,
        span=u.text[hit.start : hit.end],
        span_chars=[hit.start, hit.end],
        method="semantic",
        model=pol.model,
    )


@register
class Required(_PhraseCheck):
    """Passes when one of ``phrases`` was said (similarity >= min_similarity) by ``role``
    within the window. A failure carries the best near-miss and why it failed."""

    op: Literal["required"] = "required"
    # a phrase that fails the lexical match may pass as a paraphrase (sentence embeddings,
    # :mod:`.semantic`); None: as the rubric's ``semantic:`` block says (off without one)
    semantic: bool | None = None
    # an utterance that says one of these (as a forbidden phrase is said) is said to someone
    # else, not the act the item scores: a warm transfer's hello to a colleague ("Hi Priya,
    # it's Callum at Northwind Telecom, can you take a transfer?") greets no customer
    unless: list[str] = Field(default_factory=list)

    _check_unless = field_validator("unless")(_phrase_list)

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        pairs = select(t, self.role, self.within)
        if not self.unless:
            return self._evaluate(ctx, pairs)
        # said as such, like a forbidden phrase ("can you take me through the problem" is no
        # "can you take a transfer")
        limit = max(self.threshold_for(ctx.language), match_settings(ctx.language).forbidden)
        said = {i: p for i, u in pairs if (p := self._unless_said(ctx, u, limit)) is not None}
        # the whole turn: ASR may cut "Hi Priya, it's Callum at Northwind." from "Can you
        # take a transfer?" (held-out 16 in audio)
        skipped: dict[int, str] = {}
        for turn in turns(pairs):
            first = next((said[j] for j, _ in turn if j in said), None)
            if first is not None:
                skipped |= {i: said.get(i, first) for i, _ in turn}
        out = self._evaluate(ctx, [(i, u) for i, u in pairs if i not in skipped])
        if out.passed is not True and skipped:
            out.reason += "; not counted: " + ", ".join(
                f"utterance {i} says {p!r} (said to someone else)" for i, p in skipped.items()
            )
        return out

    def _evaluate(self, ctx: Context, pairs: list[tuple[int, Utterance]]) -> Outcome:
        said, para = self._said(ctx, pairs)
        if said is not None:
            return said
        # a phrase cut by ASR over the utterances of one turn ("Thank you very much for
        # calling." "Have a great day."): the turn's utterances read as one text
        parts = {i: turn for turn in turns(pairs) if len(turn) > 1 for i in [turn[0][0]]}
        if parts:
            said, _ = self._said(ctx, [(i, _joined(turn)) for i, turn in parts.items()])
            if said is not None:
                return _split_turns(said, parts)
        said = self._onset_lost(ctx, pairs)
        if said is not None:
            return said
        para = self._paraphrase(ctx, pairs, act=False) or para  # the nearest, for the record
        out = self._failure(ctx, pairs)
        if para is not None and para.similarity < semantic_near_miss_floor():
            # honest evidence, as for the lexical near miss: a far "closest meaning" would
            # point at an unrelated utterance (and a coaching clip at the wrong place)
            out.reason += (
                f"; no paraphrase came close (cosine {para.similarity:.2f} < "
                f"{semantic_near_miss_floor():g} with model {ctx.semantic.model})"
            )
        elif para is not None:
            ev = semantic_evidence(ctx, para)
            ev.reason = f"semantic near miss: {ev.reason}"
            out.reason += f"; {ev.reason}"
            out.evidence = [e for e in out.evidence if e.utterance is not None] + [ev]
        return out

    def _unless_said(self, ctx: Context, u: Utterance, limit: float) -> str | None:
        """The first ``unless`` phrase ``u`` says, or None."""
        said = ctx.norm(u.text)
        for phrase in self.unless:
            m = match(ctx.norm(phrase), said, ctx.language, limit)
            if m is not None and m.similarity >= limit:
                return phrase
        return None

    def _said(
        self, ctx: Context, pairs: list[tuple[int, Utterance]]
    ) -> tuple[Outcome | None, SemanticHit | None]:
        """The passing outcome of the first route that hears the phrase in one of ``pairs``
        (aligned, reordered clauses, content words, paraphrase), or None; and the best
        paraphrase tried (None when the check has no semantic fallback)."""
        limit = self.threshold_for(ctx.language)
        matches = self._matches(ctx, pairs, limit)
        hit = self._best(ctx, pairs, limit, matches) or self._reordered(ctx, pairs, limit)
        if hit is not None:
            sim, i, u, phrase, m = hit
            ev = evidence(ctx, i, u, phrase, m, f"said at utterance {i} ({sim:.2f} >= {limit:g})")
            # every other phrase said supports the pass too: a short phrase matched exactly
            # on low-confidence words (不好意思) does not make the pass undecided when a
            # longer one said around it (不好意思给您添麻烦了) rests on confident words
            others = [
                evidence(ctx, j, v, q, mq, f"said at utterance {j} ({mq.similarity:.2f})")
                for q, (j, v, mq) in self._passing(matches).items()
                if q != phrase
            ]
            return Outcome(True, ev.reason, [ev], support=[ev, *others]), None
        said = self._content(ctx, pairs)
        if said is not None:
            return Outcome(True, said.reason, [said], support=[said]), None
        para = self._paraphrase(ctx, pairs)
        if para is not None and para.similarity >= ctx.semantic.min_similarity:
            ev = semantic_evidence(ctx, para)
            why = f"said at utterance {para.index} ({ev.reason})"
            return Outcome(True, why, [ev], support=[ev]), para
        return None, para

    def _onset_lost(self, ctx: Context, pairs: list[tuple[int, Utterance]]) -> Outcome | None:
        """A turn whose first word or two ASR lost (:func:`.content.onset_lost`: "For your
        call, bye bye."): the phrase heard with those words put back; the evidence is the
        turn's own text, the reason says which words were taken as lost."""
        for turn in turns(pairs):
            i = turn[0][0]
            u = _joined(turn) if len(turn) > 1 else turn[0][1]
            un = ctx.norm(u.text)
            for phrase in self.phrases:
                lost = onset_lost(phrase, self.phrases, un, ctx.language)
                if not lost:
                    continue
                text = u.text.strip()
                prefix = len(" ".join(lost)) + 1
                fixed = u.model_copy(update={"text": f"{' '.join(lost)} {text}"})
                said, _ = self._said(ctx, [(i, fixed)])
                if said is None:
                    continue
                note = f"{' '.join(lost)!r} taken as lost at the turn's start; "

                def back(ev: Evidence, prefix=prefix, said_text=u.text, note=note) -> Evidence:
                    # spans in the utterance's own text (its leading blanks kept)
                    lead = len(said_text) - len(said_text.lstrip())
                    a, b = ev.span_chars or (prefix, prefix + len(said_text.strip()))
                    a, b = max(0, a - prefix) + lead, max(0, b - prefix) + lead
                    return ev.model_copy(
                        update={
                            "text": said_text,
                            "span": said_text[a:b],
                            "span_chars": [a, b],
                            "reason": note + (ev.reason or ""),
                        }
                    )

                out = Outcome(
                    True,
                    note + said.reason,
                    [back(e) for e in said.evidence],
                    support=[back(e) for e in said.support],
                )
                return _split_turns(out, {i: turn}) if len(turn) > 1 else out
        return None

    def _content(self, ctx: Context, pairs: list[tuple[int, Utterance]]) -> Evidence | None:
        """Evidence of the best content-word match (word languages, :mod:`.content`)."""
        best = None
        for i, u in pairs:
            hit = content_match(self.phrases, ctx.norm(u.text), ctx.language)
            if hit is not None and (best is None or hit.share > best[0].share):
                best = (hit, i, u)
        if best is None:
            return None
        hit, i, u = best
        a, b = ctx.norm(u.text).original_span(hit.start, hit.end)
        why = f"content words of {hit.phrase!r} said ({hit.share:.2f} of its act words"
        why += f"; not heard: {' '.join(hit.missing)})" if hit.missing else ")"
        return Evidence(
            utterance=i,
            start=u.start,
            end=u.end,
            text=u.text,
            matched=hit.phrase,
            similarity=hit.share,
            reason=f"said at utterance {i} ({why})",
            speaker=u.speaker,
            span=u.text[a:b],
            span_chars=[a, b],
            method="content",
        )

    def _paraphrase(
        self, ctx: Context, pairs: list[tuple[int, Utterance]], act: bool = True
    ) -> SemanticHit | None:
        """Best paraphrase when this check uses the semantic fallback, else None. Only
        utterances that say the phrase's key words and add no negation are compared, and
        (``act``) only requests when every phrase of the check is one (:func:`act_mood_ok`)."""
        on = self.semantic if self.semantic is not None else ctx.semantic_default
        if not on or ctx.semantic is None:
            return None
        best = None
        for phrase in self.phrases:
            keys = phrase_keys(phrase, self.phrases, ctx.language)
            if not keys and self.semantic is None and ctx.semantic_keyed_only:
                continue
            ok = [
                (i, u)
                for i, u in pairs
                if keys_heard(keys, ctx.norm(u.text), ctx.language, phrases=self.phrases)
                and not adds_negation(phrase, ctx.norm(u.text), ctx.language)
                and (not act or act_mood_ok(self.phrases, ctx.norm(u.text), ctx.language))
            ]
            hit = best_paraphrase(ctx.semantic, [plain(phrase)], ok, ctx.cache)
            if hit is not None and (best is None or hit.similarity > best.similarity):
                best = hit
        return best

    def _failure(self, ctx: Context, pairs: list[tuple[int, Utterance]]) -> Outcome:
        t = ctx.transcript
        if not pairs:
            reason = f"no {self.scope()} to look at"
            return Outcome(False, reason, [Evidence(reason=reason)])
        near = self._near(ctx, pairs)
        limit = self.threshold_for(ctx.language)
        floor = match_settings(ctx.language).near_miss_floor
        evs: list[Evidence] = []
        sim = near[0] if near else 0.0
        reason = f"not said: best similarity {sim:.2f} < {limit:g} in {self.scope()}"
        unheard: list[tuple[str, ...]] = []
        if near is not None and sim >= limit:  # close enough, but a key word is not heard
            _, _, u, phrase, _ = near
            keys = phrase_keys(phrase, self.phrases, ctx.language)
            unheard = [k for k in keys if not keys_heard((k,), ctx.norm(u.text), ctx.language)]
        if near is not None and sim >= limit and unheard:
            reason = (
                f"not said: best similarity {sim:.2f} >= {limit:g} in {self.scope()}, but key "
                f"word(s) of {phrase!r} not heard: {', '.join(' '.join(k) for k in unheard)}"
            )
        support: list[Evidence] = []
        if near is not None and sim >= floor:
            _, i, u, phrase, m = near
            evs.append(evidence(ctx, i, u, phrase, m, f"near miss: {m.explain()}"))
            support.append(evs[-1])
        else:  # honest evidence: a far "nearest miss" would point at an unrelated utterance
            who = "utterance" if self.role == "any" else f"{self.role} utterance"
            reason += f"; no {who} came close (near-miss floor {floor:g})"
        # Said, but in the wrong place or by the wrong speaker? Say so (it guides review).
        looked = {i for i, _ in pairs}
        outside = [
            (i, u)
            for i, u in t.role_utterances(None if self.role == "any" else self.role)
            if i not in looked
        ]
        elsewhere = self._best(ctx, outside, limit) if self.within else None
        if elsewhere is not None:
            _, i, u, phrase, m = elsewhere
            why = f"said at utterance {i}, outside {self.within.describe()}"
            evs.append(evidence(ctx, i, u, phrase, m, why))
            reason += f"; {why}"
        elif self.role != "any":
            others = [(i, u) for i, u in enumerate(t.utterances) if u.speaker != self.role]
            by_other = self._best(ctx, others, limit)
            if by_other is not None:
                _, i, u, phrase, m = by_other
                why = f"said by {u.speaker} at utterance {i}, not by {self.role}"
                evs.append(evidence(ctx, i, u, phrase, m, why))
                reason += f"; {why}"
        if not evs:
            evs.append(Evidence(reason=reason))
        return Outcome(False, reason, evs, support=support)


@register
class Forbidden(_PhraseCheck):
    """Passes when none of ``phrases`` was said by ``role`` within the window.

    The default min_similarity is the language's calibrated ``forbidden`` threshold
    (defaults.yaml ``match``; zh 0.8: a three-character phrase survives homophones, not a
    lost character; en 0.9); a hit that flips a negation never counts. Polite forms
    that contain a forbidden phrase ("不知道您现在方便吗", "i don't know if") are listed in
    ``exclude``: a hit whose span lies inside a matched exclusion is not counted (it is
    kept as evidence with the reason). The engine's own context rules (defaults.yaml: a
    negation right before the hit, a polite continuation right after it) apply too unless
    ``context_exclusions: false``."""

    op: Literal["forbidden"] = "forbidden"
    exclude: list[str] = Field(default_factory=list)
    # red lines a phrase cannot hold, as RE2 patterns over the utterance text (NFKC), their
    # Chinese words also as ASR hears them: the customer dared to complain in any frame
    # (你要不服自己去平台投诉呗: 不服 … 去 … 投诉)
    patterns: list[str] = Field(default_factory=list)
    # engine defaults (defaults.yaml): a negated hit (我不是说不可能) or a polite form
    # (不知道您现在方便吗, i don't know if) is not counted; false: literal matching only
    context_exclusions: bool = True
    threshold_kind: ClassVar[Literal["required", "forbidden"]] = "forbidden"

    _check_exclude = field_validator("exclude")(_phrase_list)

    _check_patterns = field_validator("patterns")(lambda v: _compiled_all(v))

    def _pattern_hit(self, ctx: Context, i: int, u: Utterance) -> Evidence | None:
        """The first of ``patterns`` that matches ``u`` (None: none)."""
        widen = _widener(ctx.language)
        text = unicodedata.normalize("NFKC", u.text)
        for p in self.patterns:
            m = _compile(widen(p)).search(text)
            if m is not None:
                return _regex_evidence(i, u, m, f"forbidden pattern /{p}/ said")
        return None

    def evaluate(self, ctx: Context) -> Outcome:
        t = ctx.transcript
        if role_undecidable(t, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        pairs = select(t, self.role, self.within)
        limit = self.threshold_for(ctx.language)
        hits: list[Evidence] = []
        excused: list[Evidence] = []
        forms = [
            (phrase, ctx.norm(form))
            for phrase in self.phrases
            for form in spoken_forms(phrase, ctx.language)
        ]
        for i, u in pairs:
            un = ctx.norm(u.text)
            best = _best_phrase(ctx, forms, un, limit)
            if best is None:
                if self.patterns and (ev := self._pattern_hit(ctx, i, u)) is not None:
                    hits.append(ev)
                continue
            phrase, m = best
            why = self._excused_by(ctx, un, m)
            if not why and self.context_exclusions:
                why = _polite_context(ctx, u, phrase, m)
            if why:
                excused.append(evidence(ctx, i, u, phrase, m, f"not counted: {why}"))
            else:
                hits.append(evidence(ctx, i, u, phrase, m, f"forbidden phrase {phrase!r} said"))
        if hits:
            return Outcome(
                False, f"forbidden phrase said {len(hits)} time(s)", hits + excused, support=hits
            )
        said = f"{len(self.phrases)} forbidden phrases" + (
            f" and {len(self.patterns)} patterns" if self.patterns else ""
        )
        reason = f"none of {said} in {len(pairs)} {self.scope()}"
        return Outcome(True, reason, [Evidence(reason=reason), *excused])

    def _excused_by(self, ctx: Context, un: NormText, hit: Match) -> str | None:
        limit = self.threshold_for(ctx.language)
        for phrase in self.exclude:
            m = match(ctx.norm(phrase), un, ctx.language, limit)
            if (
                m is not None
                and m.similarity >= limit
                and (m.start <= hit.start and hit.end <= m.end)
            ):
                return f"inside {phrase!r}"
        return None


# --------------------------------------------------------------------------- polite contexts


@lru_cache(maxsize=1)
def context_rules() -> dict:
    """Engine defaults (``defaults.yaml``): negation / polite contexts of forbidden phrases."""
    from pipeline.contracts import read_yaml
    from pipeline.match_config import CHECKS_DEFAULTS

    return read_yaml(CHECKS_DEFAULTS)[0]


def spoken_forms(phrase: str, language: str) -> list[str]:
    """A forbidden phrase as written, then as said with the other word of each
    ``forbidden_context.<lang>.same_word`` group it holds (你 / 您: a taboo said with the
    polite form is still one)."""
    forms = [phrase]
    groups = context_rules()["forbidden_context"].get(language[:2], {}).get("same_word", [])
    for group in groups:
        for word in group:
            if word in phrase:
                forms += [f.replace(word, other) for f in forms for other in group if other != word]
    return list(dict.fromkeys(forms))


def _polite_context(ctx: Context, utt: Utterance, phrase: str, hit: Match) -> str | None:
    """Why a forbidden hit is not a forbidden use (negated, or part of a polite form), or None."""
    rules = context_rules()["forbidden_context"].get(ctx.language[:2], {})
    un = ctx.norm(utt.text)
    # compared by sound codes without hesitations, so the context survives homophone ASR
    # errors and fillers; a rule of three or more units may also lose one unit (deletion)
    soft = un.soft or (False,) * len(un)
    before = "".join(c for c, s in zip(un.codes[: hit.start], soft, strict=False) if not s)
    after = "".join(c for c, s in zip(un.codes[hit.end :], soft[hit.end :], strict=False) if not s)
    a, b = un.original_span(hit.start, hit.end)
    if ctx.language.startswith("zh") and utt.text[b : b + 1] in "，,。.！!？?；;":
        after = ""  # a polite continuation must follow without a pause
    words = not ctx.language.startswith("zh")  # word languages: a misspelt cue word too
    for neg in rules.get("negated_before", []):
        if any(before.endswith(v) for v in _variants(ctx.norm(neg).codes)) or (
            words and cue_said(neg, utt.text[:a], ctx.language, at_end=True)
        ):
            return f"negated ({neg}…)"
    key = ctx.norm(phrase).codes
    for p, cues in rules.get("sense_before", {}).items():
        if ctx.norm(p).codes != key:
            continue
        for cue in cues:
            if before.endswith(ctx.norm(cue).codes):
                return f"another word ({cue}{phrase}: seeing or hearing)"
    for p, follows in rules.get("polite_after", {}).items():
        if ctx.norm(p).codes != key:
            continue
        for f in follows:
            if any(after.startswith(v) for v in _variants(ctx.norm(f).codes)) or (
                words and after and cue_said(f, utt.text[b:], ctx.language, at_end=False)
            ):
                return f"polite form ({phrase}{f}…)"
    return None


def _variants(code: str) -> list[str]:
    """A context rule's code, and (three units or more) the code with one unit deleted."""
    if not code:
        return []
    if len(code) < 3:
        return [code]
    return [code] + [code[:i] + code[i + 1 :] for i in range(len(code))]


# --------------------------------------------------------------------------- keywords


@register
class Keywords(Operator):
    """A keyword set: ``match: any`` (default), ``all``, ``none``, or ``at_least: N`` of
    ``words`` said by ``role`` within the window. Words are matched like phrases
    (similarity >= min_similarity, default 0.9: a homophone in a word of three or more
    characters is tolerated, shorter words must be exact)."""

    op: Literal["keywords"] = "keywords"
    role: CheckRole = "agent"
    words: list[str] = Field(min_length=1)
    match: Literal["any", "all", "none"] = "any"
    at_least: PositiveInt | None = None
    within: Within | None = None
    min_similarity: float | None = Field(default=None, ge=0, le=1)
    default_min_similarity: ClassVar[float] = 0.9

    _check_words = field_validator("words")(_phrase_list)

    @model_validator(mode="after")
    def _counts(self) -> Keywords:
        if self.at_least is not None:
            if self.match != "any":
                raise ValueError("at_least goes with match: any (the default)")
            if self.at_least > len(self.words):
                raise ValueError(f"at_least {self.at_least} > {len(self.words)} words")
        return self

    def evaluate(self, ctx: Context) -> Outcome:
        if role_undecidable(ctx.transcript, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        pairs = select(ctx.transcript, self.role, self.within)
        threshold = self.min_similarity if self.min_similarity is not None else 0.9
        found: dict[str, Evidence] = {}
        for word in self.words:
            w = ctx.norm(word)
            for i, u in pairs:
                m = match(w, ctx.norm(u.text), ctx.language, threshold)
                if m is not None and m.similarity >= threshold:
                    found[word] = evidence(ctx, i, u, word, m, f"keyword {word!r} said")
                    break
        n, total = len(found), len(self.words)
        need = {"any": self.at_least or 1, "all": total, "none": 0}[self.match]
        if self.match == "none":
            passed = n == 0
            reason = f"{n} of {total} keywords said (none allowed)"
        else:
            passed = n >= need
            reason = f"{n} of {total} keywords said (need {need})"
        missing = [w for w in self.words if w not in found]
        if missing and self.match != "none":
            reason += f"; not said: {', '.join(missing[:5])}"
        evs = list(found.values()) or [Evidence(reason=reason)]
        support = list(found.values()) if passed != (self.match == "none") else []
        return Outcome(passed, reason, evs, support=support)


# --------------------------------------------------------------------------- regex


def _digit_class_alike(cls: str) -> str:
    """A ``[...]`` class of spoken digits with the homophones of its numerals; any other
    class as written."""
    if cls.startswith("[^"):
        return cls
    hanzi = [ch for ch in cls if is_cjk(ch)]
    if len(hanzi) < 3 or any(ch not in ZH_DIGIT_CHARS for ch in hanzi):
        return cls
    extra = "".join(dict.fromkeys(c for ch in hanzi for c in homophones(zh_readings(ch)[0])))
    extra = "".join(c for c in extra if c not in cls)
    return cls[:-1] + extra + "]"


@lru_cache(maxsize=512)
def sound_alike(pattern: str) -> str:
    """``pattern`` with every run of two or more literal Chinese characters widened to what
    ASR writes for the same sounds: each character becomes a class of the common characters
    with its tone-less reading, read as a phrase (客服 -> [客克刻课…][服福复富…], so 克服
    heard for 客服 matches; 还款 is read huan kuan). A single character, escapes and a
    ``[...]`` class stay as written: one syllable heard as another character means little,
    and a class is the author's explicit list. Except a class of spoken digits (three or
    more Chinese numerals, nothing else Chinese): a digit is one syllable inside a number,
    and ASR writes it as any character of that sound (工号幺零四七 heard 工号邀领4起), so
    the class also takes their homophones."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) >= 2:
            for ch, syllable in zip(run, zh_readings("".join(run)), strict=True):
                alike = ch + homophones(syllable).replace(ch, "")
                out.append(f"[{alike}]" if len(alike) > 1 else ch)
        else:
            out.extend(run)
        run.clear()

    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if is_cjk(ch):
            run.append(ch)
            i += 1
            continue
        flush()
        if ch == "\\":
            j = i + 2
            if pattern[i + 1 : i + 2] in ("p", "P", "x") and pattern[j : j + 1] == "{":
                j = pattern.index("}", j) + 1
            out.append(pattern[i:j])
            i = j
        elif ch == "[":  # a class, copied whole (escapes inside it included)
            j = i + 1
            j += pattern[j : j + 1] == "^"
            j += pattern[j : j + 1] == "]"
            while j < n and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            out.append(_digit_class_alike(pattern[i : j + 1]))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    flush()
    return "".join(out)


@lru_cache(maxsize=512)
def _compile(pattern: str):
    """A rubric pattern on RE2 (linear time, no catastrophic backtracking), case-insensitive.

    RE2 has no backreferences or lookarounds: a rubric that uses them is rejected on load
    (``callqa rubric check``) instead of freezing a nightly batch on one transcript.
    """
    import re2

    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(
            f"invalid regular expression {pattern!r} for RE2 (linear-time engine; "
            f"no backreferences or lookarounds): {reason}"
        ) from None


def _widener(language: str, sounds_like: bool | None = None):
    """How a rubric pattern is read: its Chinese words also as ASR hears them
    (:func:`sound_alike`) when ``sounds_like`` says so, None: the language's default
    (``defaults.yaml`` -> ``match.<language>.regex_sounds_like``)."""
    if sounds_like is None:
        sounds_like = match_settings(language).regex_sounds_like
    return sound_alike if sounds_like else str


def _regex_evidence(i: int, u: Utterance, m, reason: str) -> Evidence:
    """Evidence of a pattern's match ``m`` in utterance ``i``."""
    return Evidence(
        utterance=i, start=u.start, end=u.end, text=u.text, matched=m.group(0), similarity=1.0,
        speaker=u.speaker, span=m.group(0), span_chars=[m.start(), m.end()], reason=reason,
    )  # fmt: skip


_DIGITS = "0123456789" + "".join(sorted(ZH_DIGIT_CHARS))
_CLASS = re.compile(r"\[([^\]]*)\]")


def _deciding_part(rx, pattern: str, text: str, ev: Evidence) -> Evidence | None:
    """``ev`` (a match of ``rx``, the check's ``pattern`` as matched, in ``text``) narrowed to
    the characters its verdict rests on. Left out: a character the match takes in another
    form the pattern names too (another digit where it reads a digit; a homophone where the
    pattern's own class lists it, [工公宫功攻供]): ASR's doubt between those is no doubt about
    the verdict (工 of 工号2416 heard at 0.02-0.12, split 18); and punctuation. None: nothing
    is left."""
    a, b = ev.span_chars
    listed = "".join(_CLASS.findall(pattern))

    def same(k: int, alt: str) -> bool:
        changed = text[:k] + alt + text[k + 1 :]
        return any(m.start() == a and m.end() == b for m in rx.finditer(changed))

    def deciding(k: int) -> bool:
        ch = text[k]
        if not ch.isalnum():
            return False
        alts = _DIGITS.replace(ch, "")
        if is_cjk(ch) and ch in listed:
            alts += homophones(zh_readings(ch)[0]).replace(ch, "")
        return not any(same(k, alt) for alt in alts)

    kept = [k for k in range(a, b) if deciding(k)]
    if not kept:
        return None
    return ev.model_copy(update={"span_chars": [kept[0], kept[-1] + 1]})


def _compiled_all(patterns: list[str]) -> list[str]:
    """``patterns`` unchanged once each compiles (RE2); a broken one raises."""
    for p in patterns:
        _compile(p)
    return patterns


@register
class Regex(Operator):
    """A regular expression (RE2 syntax) over the utterance text (NFKC: full-width folded,
    case-insensitive).
    ``present: true`` (default) passes when it matches in some utterance, ``false`` when in
    none; a match that lies inside a match of an ``exclude`` pattern does not count."""

    op: Literal["regex"] = "regex"
    role: CheckRole = "agent"
    pattern: str = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    present: bool = True
    within: Within | None = None
    # Chinese words also match as ASR hears them (:func:`sound_alike`); None: the language's
    # default (``defaults.yaml`` -> ``match.<language>.regex_sounds_like``)
    sounds_like: bool | None = None

    @field_validator("pattern")
    @classmethod
    def _valid(cls, v: str) -> str:
        _compile(v)
        return v

    _valid_exclude = field_validator("exclude")(lambda v: _compiled_all(v))

    def evaluate(self, ctx: Context) -> Outcome:
        if role_undecidable(ctx.transcript, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        widen = _widener(ctx.language, self.sounds_like)
        alike = widen is sound_alike
        rx = _compile(widen(self.pattern))
        excl = [_compile(widen(p)) for p in self.exclude]
        hits: list[Evidence] = []
        excused: list[Evidence] = []
        for i, u in select(ctx.transcript, self.role, self.within):
            text = unicodedata.normalize("NFKC", u.text)
            for m in rx.finditer(text):
                ex = next(
                    (
                        e.pattern
                        for e in excl
                        for x in e.finditer(text)
                        if x.start() <= m.start() and m.end() <= x.end()
                    ),
                    None,
                )
                why = f"not counted: inside exclusion {ex!r}" if ex else f"/{self.pattern}/"
                (excused if ex else hits).append(_regex_evidence(i, u, m, why))
        n = len(hits)
        passed = (n > 0) == self.present
        reason = (
            f"/{self.pattern}/"
            + (" (or its words' homophones)" if alike else "")
            + f" matched {n} time(s)"
            + ("" if self.present else " (must not match)")
        )
        evs = hits + excused or [Evidence(reason=reason)]
        if not self.present:  # a match that fails the check stands on all its words
            return Outcome(passed, reason, evs, support=hits)
        utts = ctx.transcript.utterances
        parts = [
            _deciding_part(
                rx, self.pattern, unicodedata.normalize("NFKC", utts[h.utterance].text), h
            )
            for h in hits
        ]
        return Outcome(passed, reason, evs, support=[p for p in parts if p is not None])


# --------------------------------------------------------------------------- repetition


@register
class Repeated(_PhraseCheck):
    """Passes when one of ``phrases`` was said in at least ``min_count`` utterances (e.g. the
    agent confirms the amount twice). Wrap in ``not`` to penalise repeating a phrase."""

    op: Literal["repeated"] = "repeated"
    min_count: int = Field(default=2, ge=1)

    def evaluate(self, ctx: Context) -> Outcome:
        if role_undecidable(ctx.transcript, self.role):
            return Outcome(None, f"no {self.role} utterance (roles not told apart)")
        hits = phrase_hits(
            ctx,
            self.phrases,
            select(ctx.transcript, self.role, self.within),
            self.threshold_for(ctx.language),
        )
        evs = [evidence(ctx, i, u, p, m, f"said at utterance {i}") for i, u, p, m in hits]
        n = len(hits)
        reason = f"said in {n} utterance(s) of {self.scope()} (need {self.min_count})"
        passed = n >= self.min_count
        return Outcome(
            passed, reason, evs or [Evidence(reason=reason)], support=evs if passed else []
        )


def phrase_hits(
    ctx: Context, phrases: list[str], pairs: list[tuple[int, Utterance]], threshold: float
) -> list[tuple[int, Utterance, str, Match]]:
    """Every utterance in ``pairs`` that says one of ``phrases``: (index, utt, phrase, best match)."""
    out = []
    norms = [(p, ctx.norm(p)) for p in phrases]
    for i, u in pairs:
        best = _best_phrase(ctx, norms, ctx.norm(u.text), threshold)
        if best is not None:
            out.append((i, u, best[0], best[1]))
    return out


def _best_phrase(
    ctx: Context, norms: list[tuple[str, NormText]], un: NormText, threshold: float
) -> tuple[str, Match] | None:
    """(phrase, match) of the normalised phrase forms ``norms`` that ``un`` says best, at
    ``threshold`` or above (the first of equals); None: none said."""
    best = None
    for phrase, pn in norms:
        m = match(pn, un, ctx.language, threshold)
        if (
            m is not None
            and m.similarity >= threshold
            and (best is None or m.similarity > best[1].similarity)
        ):
            best = (phrase, m)
    return best
