"""Settings shared by every stage: one :class:`Settings`, read from ``QA_*`` variables.

Any faster-whisper model directory or name is a setting, never a code change. Importing this
module changes nothing; entry points (the CLI, the nightly flow, the review app) call
:func:`enforce_offline` so no Hugging Face library reaches for a hub at run time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUBRICS_DIR = PROJECT_ROOT / "rubrics"
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_DB_URL = "sqlite:///var/callqa.db"

# The embedded models (pipeline/transcribe/embedded_models.yaml): Whisper base, multilingual
# (detects the language, decodes Chinese), and tiny.en, which decodes calls in English.
EMBEDDED_ASR_MODEL = "base"
EMBEDDED_ENGLISH_MODEL = "tiny.en"

ROUTING_TABLE = (
    RUBRICS_DIR / "routing" / "default.yaml"
)  # which form scores a call (pipeline.routing)

ENV_PREFIX = "QA_"

# Hugging Face libraries never reach for a hub at run time (models are local or bundled).
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def enforce_offline() -> None:
    """Put the Hugging Face offline variables in this process's environment (unless set).

    Called by every entry point (``callqa``, the nightly flow and its workers, the review app)
    before any model loads; child processes inherit them.
    """
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)


class SettingsError(ValueError):
    """A ``QA_*`` variable (or option) with a value the settings refuse: names it and why."""


class _Group(BaseSettings):
    """A group of settings with their own ``QA_*`` variables (no group name in them)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip() or None
        return value


class AppSettings(_Group):
    """The review app (``callqa serve``)."""

    # cookie signing key; unset: a random key generated once and kept in the app's var/ (0600)
    secret_key: SecretStr | None = None
    # interface language when neither the user's saved choice nor Accept-Language says
    ui_language: str | None = None
    webhook_url: str | None = None  # POSTed on review events; unset: no webhook
    webhook_secret: SecretStr | None = None  # HMAC-SHA256 key of the webhook signature
    # proxies (addresses, CIDR ranges, comma-separated) whose X-Forwarded-For names the
    # client; unset: the connecting address is the client (no proxy headers believed)
    trusted_proxies: str | None = None


class VaultSettings(_Group):
    """Keeping the unredacted transcript, encrypted (:mod:`pipeline.redact.vault`)."""

    keep_unredacted: bool = False
    pii_key: SecretStr | None = None  # Fernet key (pipeline.redact.vault.generate_key)


class LlmSettings(_Group):
    """LLM-judged rubric items and call summaries (:mod:`pipeline.llm`). ``llm_backend``
    unset: no model is asked; LLM items go to review ("no LLM backend configured") and no
    summary is written."""

    # openai: any OpenAI-compatible chat endpoint; embedded: llama-cpp-python (extra ``llm``)
    llm_backend: Literal["openai", "embedded"] | None = None
    llm_base_url: str | None = None  # openai: e.g. http://127.0.0.1:8000/v1
    llm_api_key: SecretStr | None = None  # openai: sent as a bearer token; never recorded
    # openai: the endpoint's model name; embedded: an embedded model name or a GGUF path
    llm_model: str | None = None
    llm_threads: int = Field(default=1, ge=1)  # embedded: CPU threads of the model
    llm_context: int = Field(default=4096, ge=512)  # embedded: context window (tokens)
    llm_max_tokens: int = Field(default=768, ge=16)  # tokens the answer may take
    llm_call_seconds: float = Field(default=180.0, gt=0)  # per call; then: review
    llm_concurrency: int = Field(default=1, ge=1)  # requests at once per process (not ASR's)
    llm_summary: bool = True  # with a backend: a summary and contact reason per call


class Settings(BaseSettings):
    """Run-time configuration: defaults, then ``QA_<FIELD>`` environment variables, then the
    arguments given (:func:`load_settings` drops arguments that are ``None``).

    What a run records and hands its workers (``model_dump``) is the pipeline's settings;
    ``app``, ``vault``, ``llm`` and ``voiceprints`` are per process, never dumped (secrets stay out of
    the store), and a worker reads them from its own environment.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="forbid")

    asr_model: str = EMBEDDED_ASR_MODEL  # faster-whisper model directory or name
    # decodes calls in English (pipeline.transcribe.language); empty: asr_model decodes them
    asr_english_model: str | None = EMBEDDED_ENGLISH_MODEL
    # languages detection chooses among (QA_ASR_LANGUAGES=zh,en); empty: any Whisper language
    asr_languages: str = "zh,en"
    # custom vocabulary (热词) YAML; None: rubrics/lexicon/default.yaml
    asr_lexicon: str | None = None
    compute_type: str = "int8"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    cpu_threads: int = Field(default=0, ge=0)  # 0: let CTranslate2 decide
    language: str = "auto"  # zh, en or auto
    # None: each model's own (pipeline/transcribe/decode_models.yaml); set: every model's
    beam_size: int | None = Field(default=None, ge=1)
    vad: bool = True
    diarizer: str = "embedded"  # backend for mono calls: embedded, pyannote
    database_url: str = DEFAULT_DB_URL
    rubric: str | None = None  # rubric id or YAML path; None: by the routing table
    routing: str | None = None  # routing table YAML; None: rubrics/routing/default.yaml
    max_concurrency: int = Field(default=2, ge=1)
    retries: int = Field(default=2, ge=0)
    # ASR decoding (see pipeline.transcribe.decode_config.AsrConfig): batched VAD chunks of a call, the
    # chunks per batch, and whether CTranslate2's CPU kernels are pinned for reproducibility.
    asr_decoding: Literal["batched", "sequential"] = "batched"
    asr_batch_size: int = Field(default=2, ge=1)
    # speech per chunk (Whisper's window: 30); None: each model's own, as beam_size
    asr_chunk_seconds: int | None = Field(default=None, ge=1, le=30)
    cpu_isa: Literal["native", "pinned"] = "native"
    # the C allocator (pipeline.allocator); read at process start, changes no output
    malloc: Literal["tcmalloc", "system"] = "tcmalloc"
    max_audio_minutes: float = Field(default=180.0, gt=0)  # longer files are refused
    # longer recordings are decoded into temporary files and read a window at a time
    spool_audio_minutes: float = Field(default=10.0, gt=0)
    # per-call budgets (pipeline.budget): floor + factor × audio length seconds; MiB of growth
    call_time_floor_s: float = Field(default=120.0, ge=0)  # 0: no time budget
    call_time_per_audio_s: float = Field(default=4.0, ge=0)
    call_memory_mb: float | None = Field(default=4096.0, gt=0)
    min_speech_s: float = Field(default=1.0, ge=0)  # less speech than this: failed, no speech
    # folders manifest rubrics may be in (QA_RUBRIC_ROOTS: os.pathsep-separated)
    rubric_roots: Annotated[list[str], NoDecode] = Field(default_factory=list)
    retry_failed: bool = False  # retry failed calls even when nothing changed
    # per process, never dumped
    voiceprints: str | None = Field(default=None, exclude=True)  # None: var/voiceprints
    app: AppSettings = Field(default_factory=AppSettings, exclude=True)
    vault: VaultSettings = Field(default_factory=VaultSettings, exclude=True)
    llm: LlmSettings = Field(default_factory=LlmSettings, exclude=True)

    @field_validator("rubric_roots", mode="before")
    @classmethod
    def _path_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p]
        return value

    @field_validator("asr_english_model", mode="before")
    @classmethod
    def _off_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
            return None
        return value

    @field_validator("asr_languages")
    @classmethod
    def _code_list(cls, value: str) -> str:
        return ",".join(c.strip().lower() for c in value.split(",") if c.strip())


def _group(field: Any) -> type[_Group] | None:
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, _Group) else None


def env_names(model: type[BaseSettings] = Settings) -> dict[str, str]:
    """Every ``QA_*`` variable the settings read → its field (``vault.pii_key`` in a group)."""
    out: dict[str, str] = {}
    for name, field in model.model_fields.items():
        if group := _group(field):
            out.update({var: f"{name}.{sub}" for var, sub in env_names(group).items()})
        else:
            out[ENV_PREFIX + name.upper()] = name
    return out


def _refusal(exc: ValidationError, given: Mapping[str, Any]) -> SettingsError:
    """The first problem as ``QA_<NAME>='value': why`` (a secret's value is never shown)."""
    err = exc.errors()[0]
    var = ENV_PREFIX + str(err["loc"][0] if err["loc"] else "").upper()
    raw = given.get(var)
    secret = "KEY" in var or "SECRET" in var
    shown = f"={raw!r}" if raw is not None and not secret else ""
    return SettingsError(f"{var}{shown}: {err['msg'].removeprefix('Value error, ')}")


def load_settings(**overrides: object) -> Settings:
    """Settings from defaults, then ``QA_*`` environment variables, then explicit overrides
    (``None`` overrides are ignored). :class:`SettingsError` names a refused variable."""
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)
    except ValidationError as exc:
        given = {**os.environ, **{ENV_PREFIX + k.upper(): v for k, v in values.items()}}
        raise _refusal(exc, given) from None


def settings_from(
    env: Mapping[str, str] | None = None, model: type[BaseSettings] = Settings
) -> Any:
    """``model`` (:class:`Settings` or one of its groups) from the process environment, or
    from the ``QA_*`` variables of ``env`` alone; :class:`SettingsError` names a refused one."""
    if env is None:
        try:
            return model()
        except ValidationError as exc:
            raise _refusal(exc, os.environ) from None
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if group := _group(field):
            values[name] = settings_from(env, group)
        elif env.get(ENV_PREFIX + name.upper(), "") != "":
            values[name] = env[ENV_PREFIX + name.upper()]
    try:
        # an env prefix no variable has: the given mapping only, never os.environ
        return model(_env_prefix="\0", **values)
    except ValidationError as exc:
        raise _refusal(exc, env) from None


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
