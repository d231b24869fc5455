"""The one place a :class:`~pipeline.schema.ScoringConfig` is built.

It sits above the stages it describes: each section is taken from the stage's own
configuration (the ASR stage's decode configuration, the diarizer's parameters, the
redaction recognisers, the risk configuration), so what is recorded is what ran. Callers
build the process-wide sections once (they hash model files) and the rubric section per call.
"""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pipeline.audio import file_sha256
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.cpu_isa import PINNED_CPU_ENV
from pipeline.redact import sets_for_language
from pipeline.schema import (
    AsrConfig,
    DiarizerConfig,
    LlmConfig,
    RedactionConfig,
    RiskConfigRef,
    RubricConfig,
    ScoringConfig,
    Transcript,
    canonical_sha256,
)
from pipeline.score.risk.config import load_calibration, load_risk_config
from pipeline.transcribe.decode_config import asr_config as decoding_config
from pipeline.transcribe.diarize import BACKENDS
from pipeline.transcribe.vocabulary import lexicon_ref
from pipeline.transcribe.zh_text import load_options


def asr_config(settings: Settings) -> AsrConfig:
    """The ASR section: model, numerics, decode and VAD options, library versions.

    Taken from :func:`pipeline.transcribe.decode_config.asr_config`, the very object the ASR
    stage decodes with (and records in each Transcript's ``produced_by.asr``), so what is
    recorded is what ran: ``decode`` holds its decoding fields (mode, batch size, beam,
    temperature, chunk length, deterministic fallback, threads per decode, model sha256,
    kernel pins).
    """
    decoding = decoding_config(settings).model_dump(mode="json")
    for key in ("model", "compute_type", "device", "faster_whisper", "ctranslate2"):
        decoding.pop(key)
    languages, english, models = (decoding.pop(k) for k in ("languages", "english_model", "models"))
    vad = decoding.pop("vad")
    pinned = decoding["cpu_isa"] == "pinned"
    return AsrConfig(
        model=settings.asr_model,
        compute_type=settings.compute_type,
        device=settings.device,
        language=settings.language,
        languages=languages,
        english_model=english,
        models=models,
        zh_text=load_options().model_dump(mode="json"),
        lexicon=lexicon_ref(settings.asr_lexicon),
        decode=_plain(decoding),
        vad=_plain(vad) if vad is not None else None,
        faster_whisper=_installed("faster-whisper"),
        ctranslate2=_installed("ctranslate2"),
        cpu_isa=PINNED_CPU_ENV["CT2_FORCE_CPU_ISA"] if pinned else None,
    )


@lru_cache(maxsize=32)
def _installed(name: str) -> str | None:
    """The installed version of package ``name`` (looked up once per process: the rubric
    section is built for every call)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def diarizer_config(backend: str) -> DiarizerConfig:
    """The mono diarizer section: backend name and its declared hyper-parameters."""
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown diarizer backend {backend!r}; valid: {', '.join(sorted(BACKENDS))}"
        )
    module, attr = BACKENDS[backend].split(":")
    params_cls = getattr(importlib.import_module(module), attr).Params
    params = params_cls().model_dump(mode="json")
    params.pop("token", None)  # never record a secret
    return DiarizerConfig(backend=backend, params=params)


def redaction_config() -> RedactionConfig:
    """The redaction section: every shipped recogniser set and the sha256 of its YAML."""
    return RedactionConfig(
        recognizers={rs.label: rs.sha256 or "" for rs in sets_for_language(None)}
    )


def risk_config_ref() -> RiskConfigRef:
    """The risk section: configuration, scorer models and signals per language, calibration."""
    config = load_risk_config()
    calibration = load_calibration(config.calibration)
    scorers: dict[str, dict[str, Any]] = {}
    for language, spec in sorted(config.scorers.items()):
        entry: dict[str, Any] = spec.model_dump(mode="json", exclude_none=True)
        if spec.path:
            model_dir = Path(spec.path)
            model_dir = model_dir if model_dir.is_absolute() else PROJECT_ROOT / model_dir
            files = (
                sorted(p for p in model_dir.rglob("*") if p.is_file()) if model_dir.is_dir() else []
            )
            entry["sha256"] = canonical_sha256(
                {str(p.relative_to(model_dir)): file_sha256(p) for p in files}
            )
        if spec.backend == "vader":
            entry["vaderSentiment"] = version("vaderSentiment")
        scorers[language] = entry
    dialogue = None
    if config.dialogue_path() is not None:
        files = sorted(
            p for p in config.dialogue_path().rglob("*") if p.is_file() and p.suffix != ".md"
        )  # the model card is not the model
        dialogue = {
            "path": config.dialogue,
            "sha256": canonical_sha256(
                {str(p.relative_to(config.dialogue_path())): file_sha256(p) for p in files}
            ),
        }
    return RiskConfigRef(
        id=config.id,
        version=config.version,
        sha256=canonical_sha256(config),
        scorers=scorers,
        signals={lang: file_sha256(config.signals_path(lang)) for lang in sorted(config.signals)},
        calibration_version=calibration.version,
        calibration_sha256=canonical_sha256(calibration),
        dialogue=dialogue,
    )


def rubric_config(rubric: Any) -> RubricConfig:
    """The rubric section: the rubric's file, the check engine's version and settings, and
    the paraphrase model and threshold its required checks fall back on."""
    from pipeline.match_config import CHECKS_DEFAULTS
    from pipeline.scripts_check.engine import ENGINE, ENGINE_VERSION
    from pipeline.scripts_check.semantic import judge_provenance, resolve_model

    policy, on_by_default = rubric.semantic_settings()
    package = resolve_model(policy.model).package
    judge = judge_provenance(rubric.language)  # None where the language has no exemplars
    return RubricConfig(
        id=rubric.id,
        version=rubric.version,
        sha256=rubric.sha256,
        engine=f"{ENGINE} {ENGINE_VERSION}",
        checks_sha256=_defaults_sha256(CHECKS_DEFAULTS),
        semantic={
            "model": policy.model,
            "min_similarity": policy.min_similarity,
            "on_by_default": on_by_default,
            "package": package,
            "package_version": _installed(package),
            # the paraphrase judge (zh): model, thresholds, exemplars file and its sha256
            **({"judge": judge} if judge else {}),
        },
    )


@lru_cache(maxsize=4)
def _defaults_sha256(path: Path) -> str:
    return file_sha256(path)


def build_scoring_config(
    rubric: Any,
    *,
    asr: AsrConfig | None = None,
    diarizer: DiarizerConfig | None = None,
    redaction: RedactionConfig | None = None,
    risk: RiskConfigRef | None = None,
    llm: LlmConfig | None = None,
) -> ScoringConfig:
    """The ScoringConfig of one call: the process-wide sections plus the call's rubric.

    ``llm`` (:func:`pipeline.llm.config.llm_config`) is recorded when the rubric has ``llm``
    items or a summary is asked for: a change of model, prompt or decoding then re-scores.
    """
    if llm is not None and not llm.summary and not rubric.llm_checks():
        llm = None
    return ScoringConfig(
        asr=asr,
        diarizer=diarizer,
        redaction=redaction,
        rubric=rubric_config(rubric),
        risk=risk,
        llm=llm,
    )


def transcript_asr_config(transcript: Transcript) -> AsrConfig | None:
    """The ASR section a text transcript file carries (its ``produced_by``), if any."""
    made = transcript.produced_by
    if made is None or not made.asr_model:
        return None
    return AsrConfig(model=made.asr_model, compute_type=made.compute_type, device=made.device)


def _plain(value: Any) -> Any:
    """JSON-safe copy (tuples → lists, numbers as they are) for hashing and storing."""
    return json.loads(json.dumps(value, default=str))
