"""Phrase-matching settings per language (``scripts_check/defaults.yaml`` → ``match``): the
thresholds and costs of :mod:`pipeline.scripts_check.match`, and the filler words that
:mod:`pipeline.text` marks as soft units.

It lies below both: text normalisation reads the fillers, the matcher the costs, and neither
needs the other to get them.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import PROJECT_ROOT
from pipeline.contracts import load_model


class LanguageMatch(BaseModel):
    """Matching settings of one language (``defaults.yaml`` → ``match.<language>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: float = Field(gt=0, le=1)  # default min_similarity of ``required``
    forbidden: float = Field(gt=0, le=1)  # default min_similarity of ``forbidden``
    near_miss_floor: float = Field(ge=0, le=1)  # "not said" cites a near miss from here on
    homophone_cost: float = Field(ge=0, le=1)
    missing_cost: float = Field(gt=0, le=2)
    extra_open: float = Field(ge=0, le=2)
    extra_extend: float = Field(ge=0, le=2)
    soft_extra_cost: float = Field(ge=0, le=2)
    fillers: tuple[str, ...] = ()
    negations: tuple[str, ...] = ()
    # negations also recognised by their sound when extra inside a span (部 for 不)
    negation_sounds: tuple[str, ...] = ()
    # phrase units whose loss costs ``light_missing_cost`` instead of ``missing_cost``: the
    # particles ASR drops most (的, 吗) carry no requirement
    light_units: tuple[str, ...] = ()
    light_missing_cost: float | None = Field(default=None, gt=0, le=2)
    # a ``regex`` check's Chinese words also match their homophones (operators.sound_alike)
    regex_sounds_like: bool = False

    def missing_of(self, unit: str) -> float:
        """What losing the phrase unit ``unit`` costs."""
        if self.light_missing_cost is not None and unit in self.light_units:
            return self.light_missing_cost
        return self.missing_cost


_OVERRIDES: dict[str, LanguageMatch] = {}

# The check engine's settings: match thresholds, content-word rules and synonym groups,
# paraphrase models and thresholds, confidence. Its sha256 is recorded with every result.
CHECKS_DEFAULTS = PROJECT_ROOT / "pipeline" / "scripts_check" / "defaults.yaml"


@lru_cache(maxsize=1)
def _match_defaults() -> dict[str, LanguageMatch]:
    return load_model(CHECKS_DEFAULTS, dict[str, LanguageMatch], section="match")


def match_settings(language: str) -> LanguageMatch:
    """The matching settings of ``language`` (zh for any zh-*, English rules otherwise)."""
    lang = "zh" if language.startswith("zh") else "en"
    return _OVERRIDES.get(lang) or _match_defaults()[lang]


@contextlib.contextmanager
def overridden(language: str, **changes):
    """Temporarily different costs / thresholds for ``language`` (calibration sweeps)."""
    lang = "zh" if language.startswith("zh") else "en"
    before = _OVERRIDES.get(lang)
    _OVERRIDES[lang] = match_settings(lang).model_copy(update=changes)
    try:
        yield _OVERRIDES[lang]
    finally:
        if before is None:
            _OVERRIDES.pop(lang, None)
        else:
            _OVERRIDES[lang] = before
