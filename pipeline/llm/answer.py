"""What a language model answered for one rubric question: the typed record the judge
returns, the cache keeps and the ``llm`` check reads. No model, no network here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.schema import CallSummary

__all__ = ["CallSummary", "LlmAnswer"]


class LlmAnswer(BaseModel):
    """One question's answer, or why there is none (``error``: the item goes to review)."""

    model_config = ConfigDict(extra="forbid")

    choice: str | None = None
    justification: str | None = None
    quotes: list[str] = Field(default_factory=list)
    error: str | None = None  # no backend, failed, timed out, malformed: never a pass
    model: str | None = None  # backend and model that answered
