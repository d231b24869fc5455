"""``BertForSequenceClassification`` inference in plain numpy, from a Hugging Face directory.

Reads the same files transformers writes (``config.json``, ``model.safetensors``,
``tokenizer.json``) with the light ``safetensors`` and ``tokenizers`` packages, so a process
that only scores text never imports torch or transformers (several seconds on a loaded CPU).
Numerically it matches transformers' eager BERT (erf GELU, post-LayerNorm, tanh pooler) to
about 1e-5; tests/test_risk.py checks that against the transformers backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.schema import ContractError

_SUPPORTED_ACT = {"gelu", "gelu_new", "gelu_pytorch_tanh", "relu"}


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: numpy has no erf, scipy is a heavy import
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _act(name: str, x: np.ndarray) -> np.ndarray:
    if name == "gelu":
        return 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    return np.maximum(x, 0.0)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def supports(model_dir: Path) -> str | None:
    """None when ``model_dir`` can run here, else why not."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"config.json unreadable: {exc}"
    if config.get("model_type") != "bert":
        return f"model_type {config.get('model_type')!r} is not 'bert'"
    if "BertForSequenceClassification" not in (config.get("architectures") or []):
        return "architecture is not BertForSequenceClassification"
    if config.get("hidden_act", "gelu") not in _SUPPORTED_ACT:
        return f"hidden_act {config.get('hidden_act')!r} not supported"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "only absolute position embeddings are supported"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (model_dir / name).exists():
            return f"no {name}"
    return None


class NumpyBert:
    """Logits of a BERT sequence classifier; ``__call__(texts) -> (n, num_labels)``."""

    def __init__(self, model_dir: Path, max_length: int):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        why = supports(model_dir)
        if why:
            raise ContractError(model_dir, f"cannot run with the numpy BERT backend: {why}")
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.layers = int(cfg["num_hidden_layers"])
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.act = cfg.get("hidden_act", "gelu")
        self.num_labels = int(cfg.get("num_labels") or len(cfg.get("id2label") or {}) or 2)
        w = load_file(str(model_dir / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}
        if "classifier.weight" not in self.w:
            raise ContractError(model_dir / "model.safetensors", "no classifier.weight")
        self.num_labels = self.w["classifier.weight"].shape[0]
        max_pos = self.w["embeddings.position_embeddings.weight"].shape[0]
        self.max_length = min(max_length, max_pos)
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.enable_truncation(self.max_length)
        self.tok.no_padding()

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Logits, one row per text, one text per forward (no padding). Batched, even texts of
        equal length move each other's logits in the last bits (2.7e-15 measured), and the
        scorer's process-wide memo would carry that into later results, so a score would
        depend on what the process scored before; alone, a text always gives the same bits."""
        out = np.empty((len(texts), self.num_labels))
        for i, e in enumerate(self.tok.encode_batch(texts)):
            out[i] = self._forward(
                np.array([e.ids], dtype=np.int64), np.array([e.type_ids], dtype=np.int64)
            )[0]
        return out

    def _forward(self, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
        n, length = ids.shape
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._ln(x, "embeddings.LayerNorm")
        hidden = x.shape[-1]
        d = hidden // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(n, length, self.heads, d).transpose(0, 2, 1, 3)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
            scores -= scores.max(-1, keepdims=True)
            att = np.exp(scores)
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ v).transpose(0, 2, 1, 3).reshape(n, length, hidden)
            x = self._ln(
                x + self._linear(ctx, f"{p}.attention.output.dense"),
                f"{p}.attention.output.LayerNorm",
            )
            h = _act(self.act, self._linear(x, f"{p}.intermediate.dense"))
            x = self._ln(x + self._linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        pooled = np.tanh(self._linear(x[:, 0], "pooler.dense"))
        return self._linear(pooled, "classifier")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
