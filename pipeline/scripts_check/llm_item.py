"""The ``llm`` check: a question in plain words that a language model answers.

::

    check:
      llm:
        question: 客服是否向客户道歉？
        choices: [{answer: 是, points: 5}, {answer: 否, points: 0}]
        instructions: 客服说了"抱歉""对不起""不好意思"等致歉的话即为"是"。

The model (:mod:`pipeline.llm.judge`) answers every ``llm`` check of a call in one request,
before the checks run; this operator only reads its answer from the :class:`Context`. Each
answer carries a choice, a justification and quoted words; every quote must be found in the
(redacted) transcript the model saw (the phrase matcher, so spacing and punctuation do not
matter). The item earns the chosen answer's points and passes when they are above 0. An
answer that is missing, failed, timed out, names no choice, quotes words the transcript does
not have, or passes without any quote goes to review (``passed: null``) with the reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.llm.answer import LlmAnswer
from pipeline.schema import Evidence, canonical_sha256
from pipeline.scripts_check.match import match
from pipeline.scripts_check.operators import CheckRole, Context, Operator, Outcome, register

# a quote counts as found when it aligns with an utterance this well (1.0: every unit);
# below 1.0 so a model's dropped particle or changed punctuation is still the same words
QUOTE_SIMILARITY = 0.85


class Choice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: str = Field(min_length=1)
    points: float = Field(default=0.0, ge=0)


@register
class LlmCheck(Operator):
    """A question a language model answers from the transcript (one of ``choices``)."""

    op: Literal["llm"] = "llm"
    question: str = Field(min_length=1)
    choices: list[Choice] = Field(min_length=2)
    instructions: str | None = None
    # whose words the quotes must be (a question about what the customer said: customer)
    role: CheckRole = "any"
    min_quote_similarity: float = Field(default=QUOTE_SIMILARITY, gt=0, le=1)

    @field_validator("choices", mode="before")
    @classmethod
    def _short_choices(cls, v):
        # ``choices: {是: 5, 否: 0}`` is the same as the list of {answer, points}
        if isinstance(v, dict):
            return [{"answer": str(k), "points": p} for k, p in v.items()]
        return v

    @model_validator(mode="after")
    def _distinct(self) -> LlmCheck:
        names = [c.answer.strip() for c in self.choices]
        if len(set(names)) != len(names):
            raise ValueError(f"answer choices must differ: {names}")
        return self

    @property
    def max_points(self) -> float:
        return max(c.points for c in self.choices)

    def question_sha256(self) -> str:
        """What the model is asked (question, choices, instructions): its answers' cache key.
        Points are not asked, so changing them re-scores without asking again."""
        return canonical_sha256(
            {
                "question": self.question,
                "choices": [c.answer for c in self.choices],
                "instructions": self.instructions,
            }
        )  # ``role`` only decides which quotes count: the model is asked the same

    def phrases_used(self) -> list[str]:
        return []

    def evaluate(self, ctx: Context) -> Outcome:
        answer = (ctx.llm_answers or {}).get(self.question_sha256())
        if answer is None:
            why = "no LLM backend configured" if ctx.llm_answers is None else "not asked"
            answer = LlmAnswer(error=why)
        if answer.error:
            reason = f"needs review: the language model gave no answer ({answer.error})"
            return Outcome(None, reason, [Evidence(reason=reason, method="llm")])
        chosen = next(
            (c for c in self.choices if c.answer.strip() == (answer.choice or "").strip()), None
        )
        said = f"{self.question} → {answer.choice!r}: {answer.justification or ''}".strip()
        if chosen is None:
            reason = (
                f"needs review: the model's answer {answer.choice!r} is none of "
                f"{[c.answer for c in self.choices]}"
            )
            return Outcome(None, reason, [Evidence(reason=reason, method="llm")])
        evidence, missing = self._verify(ctx, answer)
        if missing:
            whose = "" if self.role == "any" else f" ({self.role} utterances)"
            reason = (
                f"needs review: quote(s) not found in the transcript{whose}: "
                f"{', '.join(repr(q) for q in missing)}; {said}"
            )
            return Outcome(None, reason, evidence or [Evidence(reason=reason, method="llm")])
        passed = chosen.points > 0
        if passed and not evidence:
            reason = f"needs review: the answer earns points but quotes nothing; {said}"
            return Outcome(None, reason, [Evidence(reason=reason, method="llm")])
        reason = f"language model: {said}"
        return Outcome(
            passed,
            reason,
            evidence or [Evidence(reason=reason, method="llm", model=answer.model)],
            points=chosen.points,
        )

    def _verify(self, ctx: Context, answer: LlmAnswer) -> tuple[list[Evidence], list[str]]:
        """(evidence of every quote found in an utterance, quotes found nowhere)."""
        evidence: list[Evidence] = []
        missing: list[str] = []
        utts = ctx.transcript.utterances
        said_by = None if self.role == "any" else self.role
        for quote in answer.quotes:
            q = ctx.norm(quote)
            if not len(q):
                continue  # punctuation only: nothing to find
            best = None
            for i, u in enumerate(utts):
                if said_by is not None and u.speaker != said_by:
                    continue
                text = ctx.norm(u.text)
                m = match(q, text, ctx.language, self.min_quote_similarity)
                if m is None or m.similarity < self.min_quote_similarity:
                    continue
                if best is None or m.similarity > best[0].similarity:
                    best = (m, i, text)
                    if m.similarity >= 1.0:
                        break
            if best is None:
                missing.append(quote)
                continue
            m, i, text = best
            u = utts[i]
            a, b = text.original_span(m.start, m.end)
            evidence.append(
                Evidence(
                    utterance=i,
                    start=u.start,
                    end=u.end,
                    text=u.text,
                    speaker=u.speaker,
                    span=u.text[a:b],
                    span_chars=[a, b],
                    matched=quote,
                    similarity=round(m.similarity, 3),
                    method="llm",
                    model=answer.model,
                    reason=answer.justification,
                )
            )
        return evidence, missing
