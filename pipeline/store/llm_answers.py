"""The LLM answer cache (table ``llm_answers``): get and put by (transcript, question, model)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pipeline.store import models as m
from pipeline.store.session import StoreBase


class LlmAnswers(StoreBase):
    """Answers a language model gave, keyed by transcript hash, question hash and model."""

    def llm_answers(
        self, transcript_sha256: str, question_sha256s: list[str], model: str
    ) -> dict[str, dict[str, Any]]:
        """Cached answers of these questions on this transcript by this model: hash → answer."""
        if not question_sha256s:
            return {}
        with self.session("cannot read cached LLM answers") as s:
            rows = s.execute(
                select(m.LlmAnswer.question_sha256, m.LlmAnswer.answer).where(
                    m.LlmAnswer.transcript_sha256 == transcript_sha256,
                    m.LlmAnswer.model == model,
                    m.LlmAnswer.question_sha256.in_(question_sha256s),
                )
            ).all()
        return {q: a for q, a in rows}

    def put_llm_answers(
        self, transcript_sha256: str, answers: dict[str, dict[str, Any]], model: str
    ) -> None:
        """Keep these answers (question hash → answer); one already kept is left as it is."""
        if not answers:
            return
        with self.transaction("cannot cache LLM answers") as s:
            have = set(
                s.scalars(
                    select(m.LlmAnswer.question_sha256).where(
                        m.LlmAnswer.transcript_sha256 == transcript_sha256,
                        m.LlmAnswer.model == model,
                        m.LlmAnswer.question_sha256.in_(list(answers)),
                    )
                )
            )
            for question, answer in answers.items():
                if question not in have:
                    s.add(
                        m.LlmAnswer(
                            transcript_sha256=transcript_sha256,
                            question_sha256=question,
                            model=model,
                            answer=answer,
                        )
                    )
