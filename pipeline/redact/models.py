"""Typed outputs of the redact stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.schema import Redaction, RedactionProvenance  # the transcript contract

__all__ = ["PiiFinding", "Redaction", "RedactionProvenance"]


class PiiFinding(BaseModel):
    """One span of personal data in one utterance, with the evidence for it.

    ``char_start``/``char_end`` index the utterance text; ``start``/``end`` are seconds in
    the call (from word timestamps when the utterance has words, else proportional to the
    character offsets within the utterance).
    """

    model_config = ConfigDict(extra="forbid")

    utterance: int = Field(ge=0)
    char_start: int = Field(ge=0)
    char_end: int = Field(ge=0)
    entity_type: str
    text: str
    score: float = Field(ge=0, le=1)
    recognizer: str
    reason: str
    start: float | None = None
    end: float | None = None
    mask: str | None = None  # typed mask from the recogniser set, e.g. [身份证]
    recognizer_set: str | None = None  # e.g. zh@1.1
