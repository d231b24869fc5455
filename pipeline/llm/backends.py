"""Chat backends by name: ``openai`` (any OpenAI-compatible ``/chat/completions`` endpoint,
over httpx) and ``embedded`` (llama-cpp-python, the ``llm`` extra, one model per process).

Both take chat messages and a JSON schema the answer must follow, and return the answer's
text and token counts; both raise :class:`LlmFailed` (with the reason) or
:class:`LlmTimeout`, never return half an answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.config import LlmSettings


class LlmFailed(RuntimeError):
    """The model gave no usable answer: the reason, for the items' review note."""


class LlmTimeout(LlmFailed):
    """The call's time limit ran out before the answer was complete."""


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float


class Backend(Protocol):
    name: str
    model: str

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], timeout_s: float
    ) -> Completion: ...


class OpenAIBackend:
    """An OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp's server, a cloud model)."""

    name = "openai"

    def __init__(self, settings: LlmSettings):
        if not settings.llm_base_url or not settings.llm_model:
            raise LlmFailed("the openai backend needs QA_LLM_BASE_URL and QA_LLM_MODEL")
        self.base_url = settings.llm_base_url.rstrip("/")
        self.model = settings.llm_model
        self.max_tokens = settings.llm_max_tokens
        key = settings.llm_api_key
        self._headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], timeout_s: float
    ) -> Completion:
        import httpx

        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            # llama.cpp's server and vLLM honour the schema here; others read json_object
            "response_format": {"type": "json_object", "schema": schema},
        }
        started = time.perf_counter()
        try:
            reply = httpx.post(
                f"{self.base_url}/chat/completions",
                json=body,
                headers=self._headers,
                timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            )
        except httpx.TimeoutException:
            raise LlmTimeout(f"no answer from {self.base_url} within {timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise LlmFailed(f"{self.base_url} unreachable: {exc}") from None
        if reply.status_code != 200:
            raise LlmFailed(
                f"{self.base_url} answered HTTP {reply.status_code}: {reply.text[:200]}"
            )
        try:
            data = reply.json()
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise LlmFailed(f"{self.base_url} answered no chat completion") from None
        if not isinstance(text, str):
            raise LlmFailed(f"{self.base_url} answered no message content")
        return Completion(
            text,
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            time.perf_counter() - started,
        )


_LLAMAS: dict[tuple[str, int, int], Any] = {}
_LLAMA_LOCK = threading.Lock()


def resolve_model_path(name: str) -> Path:
    """An embedded model name (reassembled and verified on first use) or a GGUF path."""
    from pipeline.llm.config import MODELS_FILE, embedded_model_spec
    from pipeline.transcribe.models import ModelError, resolve_embedded

    spec = embedded_model_spec(name)
    if spec is None:
        path = Path(name)
        if not path.is_file():
            raise LlmFailed(f"{name!r} is neither an embedded model nor a GGUF file")
        return path
    try:
        return resolve_embedded(name, MODELS_FILE) / spec.file  # type: ignore[operator]
    except ModelError as exc:
        raise LlmFailed(f"{exc} (make setup-llm)") from None


def _load(llama_cls: Any, **kwargs: Any) -> Any:
    """``Llama(**kwargs)`` without llama.cpp's extra weight buffers (``use_extra_bufts``).

    With them, llama.cpp 0.3.36 repacks the weights for the CPU's matrix extensions, and on
    this project's machines (Xeon with AMX) every batched decode (any prompt of more than
    one token) ends in a segmentation fault; one token at a time works. Llama() has no
    argument for it, so its default model parameters are swapped while it loads (under
    the caller's lock) and put back at once.
    """
    import llama_cpp.llama as high

    default = high.llama_cpp.llama_model_default_params

    def params():
        p = default()
        p.use_extra_bufts = False
        return p

    high.llama_cpp.llama_model_default_params = params
    try:
        return llama_cls(**kwargs)
    finally:
        high.llama_cpp.llama_model_default_params = default


class EmbeddedBackend:
    """llama-cpp-python in this process: the model is loaded once per process and shared."""

    name = "embedded"

    def __init__(self, settings: LlmSettings):
        from pipeline.llm.config import EMBEDDED_LLM_MODEL, SEED

        self.model = settings.llm_model or EMBEDDED_LLM_MODEL
        self.max_tokens = settings.llm_max_tokens
        self.path = resolve_model_path(self.model)
        self.seed = SEED
        key = (str(self.path), settings.llm_threads, settings.llm_context)
        with _LLAMA_LOCK:
            if key not in _LLAMAS:
                try:
                    from llama_cpp import Llama
                except ImportError:
                    raise LlmFailed(
                        "the embedded backend needs llama-cpp-python (pip install '.[llm]')"
                    ) from None
                _LLAMAS[key] = _load(
                    Llama,
                    model_path=str(self.path),
                    n_ctx=settings.llm_context,
                    n_threads=settings.llm_threads,
                    seed=self.seed,
                    verbose=False,
                )
            self.llama = _LLAMAS[key]
        # one llama context is not safe to share between threads at once
        self._lock = threading.Lock()

    def complete(
        self, messages: list[dict[str, str]], schema: dict[str, Any], timeout_s: float
    ) -> Completion:
        started = time.perf_counter()
        deadline = started + timeout_s
        parts: list[str] = []
        finish = None
        with self._lock:
            try:
                # streamed, so the time limit is checked after every generated token (the
                # prompt is read in one go first: about 40 tokens/s on one thread)
                for chunk in self.llama.create_chat_completion(
                    messages=messages,
                    temperature=0.0,
                    seed=self.seed,
                    max_tokens=self.max_tokens,
                    response_format={"type": "json_object", "schema": schema},
                    stream=True,
                ):
                    choice = chunk["choices"][0]
                    parts.append(choice.get("delta", {}).get("content") or "")
                    finish = choice.get("finish_reason") or finish
                    if time.perf_counter() > deadline and finish is None:
                        raise LlmTimeout(f"the answer was not complete within {timeout_s:g} s")
            except ValueError as exc:  # e.g. the prompt exceeds the context window
                raise LlmFailed(f"llama.cpp refused the request: {exc}") from None
            generated = sum(1 for p in parts if p)
            prompt_tokens = max(0, self.llama.n_tokens - generated)
        if finish == "length":
            raise LlmFailed(f"the answer did not fit in {self.max_tokens} tokens")
        return Completion("".join(parts), prompt_tokens, generated, time.perf_counter() - started)


def make_backend(settings: LlmSettings) -> Backend | None:
    """The backend ``settings`` name (None: none configured)."""
    if settings.llm_backend is None:
        return None
    if settings.llm_backend == "openai":
        return OpenAIBackend(settings)
    return EmbeddedBackend(settings)
