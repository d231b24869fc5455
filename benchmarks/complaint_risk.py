"""Complaint-risk figures on held-out data: AUC, F1 at the high threshold, Brier, reliability.

Held-out data that may legitimately be used here:
- synthetic calls (pipeline/score/risk/synth.py) built from the 'bench' half of the reviews the
  utterance model never trained on; calibration was fitted on the other half;
- the held-out review split, for the per-utterance model's accuracy.
Also prints two baselines on the same calls (keyword counter, sentiment mean) and timings.

    .venv/bin/python benchmarks/complaint_risk.py [--n 600] [--seed 11]
"""

from __future__ import annotations

import argparse
import os
import time

from pipeline.score.risk.calibrate import auc, brier, f1_at, reliability
from pipeline.score.risk.config import load_calibration, load_risk_config
from pipeline.score.risk.corpora import DEFAULT_CACHE, load_reviews, split_of
from pipeline.score.risk.engine import calibrated, compute_features
from pipeline.score.risk.scorers import get_scorer
from pipeline.score.risk.synth import heldout_reviews, synth_calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    config = load_risk_config()
    cal = load_calibration(config.calibration)
    t0 = time.perf_counter()
    import torch  # noqa: F401  (library import timed apart from the model load)
    import transformers  # noqa: F401

    t1 = time.perf_counter()
    scorer = get_scorer(config.scorers["zh"])
    t2 = time.perf_counter()
    print(
        f"model {scorer.id}, calibration v{cal.version} ({cal.fitted_on})\n"
        f"zh model load {t2 - t1:.2f}s after importing torch+transformers ({t1 - t0:.2f}s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    turns = [
        "这是我第三次打电话了，快递一个星期还没送到",
        "每次都说查询，一直没人处理，太差了",
        "算了，我要去投诉",
    ]
    t3 = time.perf_counter()
    scorer.negativity(turns)
    print(f"scoring a call's 3 customer turns: {(time.perf_counter() - t3) * 1000:.0f} ms")

    reviews = load_reviews(DEFAULT_CACHE)
    test = [r for r in reviews if split_of(r.text) == "test"]
    probs = scorer.negativity([r.text for r in test])
    acc = sum((p >= 0.5) == (r.label == 0) for p, r in zip(probs, test, strict=True)) / len(test)
    print(
        f"per-utterance zh: held-out review accuracy {acc:.4f} (n={len(test)}), "
        f"AUC {auc(probs, [1 - r.label for r in test]):.4f}"
    )

    calls = synth_calls(heldout_reviews(reviews, "bench"), args.n, seed=args.seed)
    y = [label for _, label in calls]
    t0 = time.perf_counter()
    feats = [compute_features(t, None, config) for t, _ in calls]
    per_call = (time.perf_counter() - t0) / len(calls)
    p = [calibrated(f.z, cal) for f in feats]
    keyword = [
        sum(1 for h in f.hits if h.counted and h.kind in ("complaint", "escalation")) for f in feats
    ]
    sentiment = [f.values["neg_mean"] for f in feats]
    print(f"synthetic held-out calls: n={len(y)}, positives={sum(y)} (label noise 8% included)")
    print(
        f"  risk score          AUC {auc(p, y):.4f}  F1@high({config.levels.high}) {f1_at(p, y, config.levels.high):.4f}"
        f"  Brier {brier(p, y):.4f}"
    )
    print(f"  baseline keywords   AUC {auc(keyword, y):.4f}")
    print(f"  baseline sentiment  AUC {auc(sentiment, y):.4f}")
    print(f"  time per call (features + model, CPU) {per_call * 1000:.1f} ms")
    print("  reliability:  bin        n  predicted observed")
    for row in reliability(p, y):
        print(
            f"               {row['bin']}  {row['n']:4d}  {row['predicted']:.3f}     {row['observed']:.3f}"
        )
    print(
        "English: no labelled English data installs here; the VADER lexicon scores English turns (not measured)."
    )


if __name__ == "__main__":
    main()
