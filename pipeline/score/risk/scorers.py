"""Per-utterance dissatisfaction scorers behind one interface, picked by backend name.

``transformers``: any Hugging Face sequence-classification directory; which label index means
negative comes from ``labels.yaml`` in that directory (or the configuration). ``bert_numpy``:
the same kind of directory when it holds a ``BertForSequenceClassification`` with a
``tokenizer.json``, run in numpy (no torch/transformers import: loads in well under a second).
``vader``: the VADER lexicon for English (no labelled English data installs here to train a
model on). Scorers are loaded once per process and cached.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.config import PROJECT_ROOT
from pipeline.schema import ContractError


class UtteranceScorer(Protocol):
    id: str  # model id and version, recorded in Risk.model

    def negativity(self, texts: list[str]) -> list[float]:
        """P(dissatisfied / negative) for each text, in [0, 1]."""


class LabelMap(BaseModel):
    """``labels.yaml`` beside a model: which output index means negative."""

    model_config = ConfigDict(extra="allow")
    id: str | None = None
    version: str | int | None = None
    negative_index: int | list[int] = Field(default=0)
    max_length: int = Field(default=128, ge=8)

    def negative(self) -> list[int]:
        idx = self.negative_index
        return [idx] if isinstance(idx, int) else list(idx)


class ScorerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str
    path: str | None = None  # model dir, relative to the project root or absolute
    negative_index: int | list[int] | None = None  # overrides labels.yaml
    slope: float = 3.0  # vader: P(neg) = sigmoid(-slope * compound + offset)
    offset: float = -1.0


class _HFDirScorer:
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
        self.max_length = labels.max_length
        self.id = f"{labels.id or self.path.name}-v{labels.version or 0}"
        self._lock = threading.Lock()

    def _check_labels(self, n_labels: int) -> None:
        if any(i >= n_labels or i < 0 for i in self.negative):
            raise ContractError(
                self.path, f"negative_index {self.negative} outside 0..{n_labels - 1}"
            )

    def _chunks(self, text: str) -> list[str]:
        size = max(8, self.max_length - 2)
        text = text.strip() or " "
        return [text[i : i + size] for i in range(0, len(text), size)]

    def _p_negative(self, pieces: list[str]) -> list[float]:
        raise NotImplementedError

    def negativity(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        unique = list(dict.fromkeys(texts))  # a repeated turn (好的, 嗯) is scored once
        if len(unique) < len(texts):
            by_text = dict(zip(unique, self.negativity(unique), strict=True))
            return [by_text[t] for t in texts]
        pieces, owner = [], []
        for i, t in enumerate(texts):
            for chunk in self._chunks(t):
                pieces.append(chunk)
                owner.append(i)
        with self._lock:
            probs = self._p_negative(pieces)
        sums = [0.0] * len(texts)
        weights = [0.0] * len(texts)
        for i, p, chunk in zip(owner, probs, pieces, strict=True):
            sums[i] += p * len(chunk)
            weights[i] += len(chunk)
        return [s / w for s, w in zip(sums, weights, strict=True)]


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

    def _p_negative(self, pieces: list[str]) -> list[float]:
        with self._torch.inference_mode():
            enc = self.tokenizer(
                pieces,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            return self.model(**enc).logits.softmax(-1)[:, self.negative].sum(-1).tolist()


class NumpyBertScorer(_HFDirScorer):
    def __init__(self, spec: ScorerSpec):
        super().__init__(spec)
        from pipeline.score.risk.bert_numpy import NumpyBert

        self.model = NumpyBert(self.path, self.max_length)
        self._check_labels(self.model.num_labels)

    def _p_negative(self, pieces: list[str]) -> list[float]:
        from pipeline.score.risk.bert_numpy import softmax

        out: list[float] = []
        for i in range(0, len(pieces), 64):  # bounded memory on long calls
            probs = softmax(self.model(pieces[i : i + 64]))
            out += probs[:, self.negative].sum(-1).tolist()
        return out


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


BACKENDS = {
    "transformers": TransformersScorer,
    "bert_numpy": NumpyBertScorer,
    "vader": VaderScorer,
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
        if key not in _CACHE:
            _CACHE[key] = BACKENDS[spec.backend](spec)
        return _CACHE[key]


def _load_labels(model_dir: Path) -> LabelMap:
    path = model_dir / "labels.yaml"
    if not path.exists():
        return LabelMap(id=model_dir.name)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return LabelMap.model_validate(data)
    except yaml.YAMLError as exc:
        raise ContractError(path, f"not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ContractError(path, f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
