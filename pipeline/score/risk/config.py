"""Risk configuration (``rubrics/risk/model.yaml``) and versioned calibrations (``models/risk``).

The configuration holds the utterance scorer per language, the signal files, the weights of the
call-level logistic combination and the ``level`` thresholds. A calibration (Platt: a, b) is a
separate versioned file written by ``callqa train risk``, so a stored score names the
calibration version that produced it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.config import MODELS_DIR, PROJECT_ROOT, RUBRICS_DIR
from pipeline.contracts import ContractError, load_model

DEFAULT_CONFIG = RUBRICS_DIR / "risk" / "model.yaml"
CALIBRATION_DIR = MODELS_DIR / "risk"
_CAL_NAME = re.compile(r"^calibration-v(\d+)\.yaml$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScorerSpec(BaseModel):
    """One language's utterance scorer (:mod:`pipeline.score.risk.scorers` builds it)."""

    model_config = ConfigDict(extra="forbid")
    backend: str
    path: str | None = None  # model dir, relative to the project root or absolute
    negative_index: int | list[int] | None = None  # overrides labels.yaml
    slope: float = 3.0  # vader: P(neg) = sigmoid(-slope * compound + offset)
    offset: float = -1.0
    members: list[ScorerSpec] | None = None  # ensemble: the scorers whose sentiment is averaged


class ConversationParams(_Strict):
    ending_turns: int = Field(default=2, ge=1)  # customer turns that make "the ending"
    evidence_negativity: float = Field(default=0.75, ge=0, le=1)
    repeat_similarity: float = Field(default=0.6, gt=0, le=1)
    repeat_min_chars: int = Field(default=6, ge=1)
    long_silence_s: float = Field(default=10.0, gt=0)
    trend_evidence: float = Field(default=0.25, ge=0)
    max_evidence: int = Field(default=8, ge=1)


class Weights(_Strict):
    """Logit weights of the call-level features (DESIGN: one calibrated score)."""

    bias: float
    neg_mean: float
    neg_max: float
    neg_end: float
    trend: float
    repetition: float
    unanswered: float
    ends_with_customer: float
    customer_turns: float
    long_silence: float
    interruption: float
    # dialogue-shape features (v3); 0 keeps an older configuration's meaning
    neg_start: float = 0.0
    neg_last: float = 0.0
    pos_end: float = 0.0
    rejected_answers: float = 0.0
    # the dialogue model's risk logit (v4; models/risk_dialogue)
    dialogue: float = 0.0


class Levels(_Strict):
    medium: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.medium >= self.high:
            raise ValueError(f"medium ({self.medium}) must be below high ({self.high})")
        return self

    def level(self, score: float) -> str:
        return "high" if score >= self.high else "medium" if score >= self.medium else "low"


class RiskConfig(_Strict):
    id: str
    version: int | str
    scorers: dict[str, ScorerSpec]
    signals: dict[str, str]
    conversation: ConversationParams = Field(default_factory=ConversationParams)
    weights: Weights
    caps: dict[str, float] = Field(default_factory=dict)  # |sum of signal weights| per kind
    feature_caps: dict[str, float] = Field(default_factory=dict)  # counts per feature
    levels: Levels
    calibration: str = "latest"  # or "v3", or a path
    # conversation-level model trained on real helpdesk dialogues (pipeline/score/risk/dialogue.py)
    dialogue: str | None = None

    def dialogue_path(self) -> Path | None:
        if self.dialogue is None:
            return None
        p = Path(self.dialogue)
        return p if p.is_absolute() else PROJECT_ROOT / p

    @model_validator(mode="after")
    def _languages(self) -> RiskConfig:
        missing = set(self.scorers) ^ set(self.signals)
        if missing:
            raise ValueError(
                f"scorers and signals must cover the same languages; differ on {sorted(missing)}"
            )
        return self

    def signals_path(self, language: str) -> Path:
        p = Path(self.signals[language])
        return p if p.is_absolute() else PROJECT_ROOT / p


class ReliabilityBin(BaseModel):
    """One probability bin of a calibration's reliability table."""

    model_config = ConfigDict(extra="forbid")
    bin: str  # "0.3-0.4"
    n: int
    predicted: float  # mean calibrated probability
    observed: float  # observed complaint rate


class LanguagePlatt(BaseModel):
    """A per-language Platt (a, b) on top of the fitted weights: where a language's logits sit
    elsewhere than those of the language the weights were fitted on."""

    model_config = ConfigDict(extra="forbid")
    a: float
    b: float
    fitted_on: str
    n: int
    positives: int
    brier: float
    brier_before: float  # with the calibration's own (a, b), on the same calls


class Calibration(BaseModel):
    """A Platt calibration written by ``callqa train`` (closed: what it writes is declared)."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=0)
    a: float = 1.0
    b: float = 0.0
    fitted_on: str = "uncalibrated"
    created: str | None = None
    n: int | None = None
    positives: int | None = None
    auc: float | None = None
    brier: float | None = None
    brier_before: float | None = None  # of the previous calibration on the same calls
    reliability: list[ReliabilityBin] | None = None
    # fitted logistic weights over the engine's features (None: the configuration's priors)
    l2: float | None = None  # strength of the pull towards the prior weights
    prior: str | None = None  # where the prior weights came from
    bias: float = 0.0
    weights: dict[str, float] | None = None
    scorers: dict[str, str] | None = None  # language -> utterance scorer the fit used
    dialogue: str | None = None  # the dialogue model (id-vN) whose logit the fit read
    languages: dict[str, LanguagePlatt] | None = None  # language -> its own (a, b)

    def platt(self, language: str | None) -> tuple[float, float]:
        """(a, b) for a call in ``language``: its own where fitted, else the calibration's."""
        own = (self.languages or {}).get(language or "")
        return (own.a, own.b) if own else (self.a, self.b)

    source: str | None = Field(default=None, exclude=True)  # the file it was read from


@lru_cache(maxsize=8)
def load_risk_config(path: str | Path = DEFAULT_CONFIG) -> RiskConfig:
    path = Path(path)
    return load_model(path, RiskConfig)


def calibration_files(directory: Path = CALIBRATION_DIR) -> dict[int, Path]:
    found = {}
    for p in directory.glob("calibration-v*.yaml"):
        if m := _CAL_NAME.match(p.name):
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


@lru_cache(maxsize=8)
def load_calibration(which: str = "latest", directory: Path = CALIBRATION_DIR) -> Calibration:
    """``latest`` (highest version in ``directory``), ``vN``, or a file path."""
    files = calibration_files(directory)
    if which == "latest":
        if not files:
            return Calibration(version=0)
        path = files[max(files)]
    elif m := re.fullmatch(r"v(\d+)", which):
        if int(m.group(1)) not in files:
            raise ContractError(
                directory, f"no calibration {which}; have {[f'v{v}' for v in files]}"
            )
        path = files[int(m.group(1))]
    else:
        path = Path(which)
    cal = load_model(path, Calibration)
    cal.source = str(path)
    return cal


def write_calibration(cal: dict, directory: Path = CALIBRATION_DIR) -> Path:
    """Write the next calibration version; returns its path. Never overwrites an old one."""
    directory.mkdir(parents=True, exist_ok=True)
    files = calibration_files(directory)
    version = max(files, default=0) + 1
    body = {"version": version, "created": datetime.now(UTC).isoformat(timespec="seconds"), **cal}
    body["version"] = version
    path = directory / f"calibration-v{version}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_calibration.cache_clear()
    return path
