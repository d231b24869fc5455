"""Configuration of the language model stage: the prompt template (data, validated on load),
the embedded model table, and the :class:`~pipeline.schema.LlmConfig` section a ScoringConfig
records (backend, model and its sha256, prompt template hash, decode settings).

Nothing here loads a model or reaches a network; :mod:`pipeline.llm.judge` does.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.config import LlmSettings
from pipeline.contracts import ContractError, read_yaml, validate
from pipeline.schema import LlmConfig

PROMPT_FILE = Path(__file__).with_name("prompt.yaml")
MODELS_FILE = Path(__file__).with_name("embedded_models.yaml")
EMBEDDED_LLM_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"
TEMPERATURE = 0.0  # the same transcript and question give the same answer
SEED = 0


class LlmConfigError(ContractError):
    """A prompt template or LLM setting that cannot be used: names the file and the reason."""


class LanguagePrompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(min_length=1)
    task: str = Field(min_length=1)
    question_block: str = Field(min_length=1)
    summary_task: str = Field(min_length=1)
    speakers: dict[str, str]

    @field_validator("task")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        for name in ("{transcript}", "{questions}", "{summary}"):
            if name not in v:
                raise ValueError(f"needs the placeholder {name}")
        return v

    @field_validator("question_block")
    @classmethod
    def _question_placeholders(cls, v: str) -> str:
        for name in ("{id}", "{choices}"):
            if name not in v:
                raise ValueError(f"needs the placeholder {name}")
        return v


class PromptTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    languages: dict[str, LanguagePrompt] = Field(min_length=1)
    sha256: str = ""  # of the file, set by the loader

    def for_language(self, language: str) -> LanguagePrompt:
        """The prompt in ``language`` (``zh-CN`` → ``zh``); English when it has none."""
        base = (language or "en").split("-")[0].lower()
        return self.languages.get(base) or self.languages["en"]


@cache
def load_prompt(path: Path = PROMPT_FILE) -> PromptTemplate:
    """The prompt template at ``path``, validated; :class:`LlmConfigError` names a bad file."""
    data, raw = read_yaml(path, error=LlmConfigError)
    template = validate(data, PromptTemplate, path, error=LlmConfigError)
    if "en" not in template.languages:
        raise LlmConfigError(path, "languages", "needs an 'en' prompt (the fallback)")
    return template.model_copy(update={"sha256": hashlib.sha256(raw).hexdigest()})


def embedded_model_spec(name: str):
    """The embedded model table's entry for ``name`` (None: not an embedded model name)."""
    from pipeline.transcribe.models import embedded_models

    return embedded_models(MODELS_FILE).get(name)


def decode_settings(settings: LlmSettings) -> dict[str, object]:
    """What decides the words of an answer besides the model and the prompt."""
    decode: dict[str, object] = {
        "temperature": TEMPERATURE,
        "max_tokens": settings.llm_max_tokens,
        "response_format": "json_schema",
    }
    if settings.llm_backend == "embedded":
        decode.update(n_ctx=settings.llm_context, seed=SEED)
    return decode


def llm_config(settings: LlmSettings, *, summary: bool | None = None) -> LlmConfig:
    """The ``llm`` section of a ScoringConfig for these settings (``backend: none`` unset).

    The embedded model's sha256 is the one its table records: the assembler refuses a file
    that does not have it (pipeline/transcribe/models.py). A GGUF path is hashed once per
    process.
    """
    prompt = load_prompt()
    backend = settings.llm_backend
    if backend is None:
        return LlmConfig(backend="none", prompt_sha256=prompt.sha256)
    summary = settings.llm_summary if summary is None else summary
    model, sha256, base_url = settings.llm_model, None, None
    if backend == "embedded":
        model = model or EMBEDDED_LLM_MODEL
        spec = embedded_model_spec(model)
        if spec is not None:
            sha256 = spec.sha256
        else:
            from pipeline.transcribe.models import model_file_sha256

            if not Path(model).is_file():
                raise LlmConfigError(
                    "QA_LLM_MODEL", f"{model!r} is neither an embedded model nor a GGUF file"
                )
            sha256 = model_file_sha256(model)
    else:
        if not settings.llm_base_url or not model:
            raise LlmConfigError(
                "QA_LLM_BASE_URL", "the openai backend needs QA_LLM_BASE_URL and QA_LLM_MODEL"
            )
        base_url = settings.llm_base_url.rstrip("/")
    return LlmConfig(
        backend=backend,
        model=model,
        model_sha256=sha256,
        base_url=base_url,
        prompt_sha256=prompt.sha256,
        decode=decode_settings(settings),
        summary=summary,
    )
