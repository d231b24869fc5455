"""A small numpy classification head on sentence embeddings: negative / neutral / positive.

Trained by ``models/train_risk_head.py`` (sklearn), stored as ``head.npz`` (weights only) and
run here in numpy: the scoring path imports neither torch nor sklearn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.schema import ContractError

HEAD_LABELS = ("negative", "neutral", "positive")


def clip_text(text: str, max_chars: int) -> str:
    """The first ``max_chars`` characters, spaces collapsed (how texts are embedded)."""
    return " ".join(text.split())[:max_chars] or " "


@dataclass
class SentimentHead:
    """Dense layers (weight ``(in, out)``, bias ``(out,)``), ReLU between, softmax at the end."""

    layers: list[tuple[np.ndarray, np.ndarray]]

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        for k, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if k < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        arrays = {}
        for k, (w, b) in enumerate(self.layers):
            arrays[f"w{k}"], arrays[f"b{k}"] = w.astype(np.float32), b.astype(np.float32)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> SentimentHead:
        try:
            data = np.load(path)
        except FileNotFoundError:
            raise ContractError(path, "file not found") from None
        except (OSError, ValueError) as exc:
            raise ContractError(path, f"not a head .npz file: {exc}") from None
        layers = []
        while f"w{len(layers)}" in data:
            k = len(layers)
            layers.append((data[f"w{k}"], data[f"b{k}"]))
        if not layers:
            raise ContractError(path, "no layers (expected arrays w0, b0, ...)")
        for k, (w, b) in enumerate(layers):
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise ContractError(path, f"layer {k}: weight {w.shape} and bias {b.shape} differ")
            if k and layers[k - 1][0].shape[1] != w.shape[0]:
                raise ContractError(path, f"layer {k} does not take layer {k - 1}'s output")
        if layers[-1][0].shape[1] != len(HEAD_LABELS):
            raise ContractError(path, f"last layer gives {layers[-1][0].shape[1]} outputs, need 3")
        return cls(layers=layers)

    @property
    def input_dim(self) -> int:
        return int(self.layers[0][0].shape[0])
