"""Custom vocabulary (热词): the deployment lexicon and a form's terms as decode hints.

The lexicon (``rubrics/lexicon/default.yaml`` or ``QA_ASR_LEXICON``, validated on load) lists
terms per language and says how they reach faster-whisper: ``hotwords`` (its hot-word
prefix), ``prompt`` (Whisper's ``initial_prompt``), ``both`` or ``off``. A rubric's
``vocabulary:`` adds the form's own terms for the calls routed to it before transcription,
the way the lexicon's ``forms`` says (the prompt by default): a form's terms are what its calls
say, where the lexicon's reach every call, and terms a call does not say make Whisper base
worse (README, "Custom vocabulary").
The hints a call was decoded with are recorded in its transcript (``produced_by.asr``), the
lexicon's sha256 and ``use`` in the ScoringConfig.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.audio import file_sha256
from pipeline.config import PROJECT_ROOT
from pipeline.contracts import ContractError, load_model

DEFAULT_LEXICON = PROJECT_ROOT / "rubrics" / "lexicon" / "default.yaml"
SEPARATOR = {"zh": "、"}  # how terms are joined per language (else ", ")
MAX_TERMS = 64  # faster-whisper cuts hot words at half the decoder's context anyway


class LexiconError(ContractError):
    """A lexicon file that does not validate: file, place, reason."""


class Lexicon(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int | str
    use: Literal["hotwords", "prompt", "both", "off"] = "hotwords"  # the lexicon's terms
    # how a form's ``vocabulary:`` reaches Whisper, for the calls routed to that form
    forms: Literal["hotwords", "prompt", "both", "off"] = "prompt"
    terms: dict[str, list[str]] = Field(default_factory=dict)  # language → terms
    sha256: str | None = None
    path: str | None = None

    @field_validator("use", "forms", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        return "off" if value is False else value  # YAML reads a bare off as false

    @field_validator("terms")
    @classmethod
    def _clean(cls, terms: dict[str, list[str]]) -> dict[str, list[str]]:
        for language, words in terms.items():
            if any(not w.strip() for w in words):
                raise ValueError(f"{language}: an empty term")
            if len(words) > MAX_TERMS:
                raise ValueError(f"{language}: {len(words)} terms, at most {MAX_TERMS}")
        return {lang: [w.strip() for w in words] for lang, words in terms.items()}


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> Lexicon:
    lexicon = load_model(path, Lexicon, error=LexiconError)
    return lexicon.model_copy(update={"sha256": file_sha256(path), "path": str(path)})


def load_lexicon(path: str | Path | None = None) -> Lexicon:
    """The lexicon at ``path`` (default: the shipped one); :class:`LexiconError` names a
    file that is missing or does not validate, the place in it and why."""
    path = Path(path) if path else DEFAULT_LEXICON
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise LexiconError(path, "file not found") from None
    return _load(path, mtime)


def lexicon_ref(path: str | Path | None = None) -> dict[str, str | None]:
    """What the ScoringConfig records of the lexicon: its sha256 and use (not where the
    file lies, so a fingerprint does not depend on the checkout's folder)."""
    lexicon = load_lexicon(path)
    return {"sha256": lexicon.sha256, "use": lexicon.use, "forms": lexicon.forms}


def decode_hints(
    lexicon: Lexicon, language: str, extra: list[str] | tuple[str, ...] = ()
) -> dict[str, str | None]:
    """``{"hotwords": ..., "initial_prompt": ...}`` for a call in ``language``: the lexicon's
    terms for it (as its ``use`` says), then ``extra``, the vocabulary of the form the call
    was routed to (as its ``forms`` says), each term once, in that order."""
    own = lexicon.terms.get(language, [])

    def hint(mode: str) -> str | None:
        terms: list[str] = []
        if lexicon.use in (mode, "both"):
            terms += own
        if lexicon.forms in (mode, "both"):
            terms += extra
        return SEPARATOR.get(language, ", ").join(list(dict.fromkeys(terms))[:MAX_TERMS]) or None

    return {"hotwords": hint("hotwords"), "initial_prompt": hint("prompt")}
