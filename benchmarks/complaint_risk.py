"""Complaint-risk figures on held-out data: AUC, F1 at the high threshold, Brier, reliability.

Held-out data that may legitimately be used here:
- synthetic calls (pipeline/score/risk/synth.py) built from the 'bench' half of the reviews the
  utterance model never trained on; calibration was fitted on the other half;
- the held-out split of the model's training texts (reviews and neutral text), for the
  per-utterance model's accuracy per source;
- a fixed table of plain helpdesk questions and angry customer turns (written here, not data).
Also prints two baselines on the same calls (keyword counter, sentiment mean) and timings:
first load in a fresh process (import + model), and scoring time per call.

    .venv/bin/python benchmarks/complaint_risk.py [--n 600] [--seed 11]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from pipeline.score.risk.calibrate import auc, brier, f1_at, reliability
from pipeline.score.risk.config import load_calibration, load_risk_config
from pipeline.score.risk.corpora import (
    DEFAULT_CACHE,
    NEGATIVE,
    load_reviews,
    load_training_texts,
    split_of,
)
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
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import pipeline.score.risk\n"
        "t1 = time.perf_counter()\n"
        "from pipeline.score.risk.config import load_risk_config\n"
        "from pipeline.score.risk.scorers import get_scorer\n"
        "s = get_scorer(load_risk_config().scorers['zh'])\n"
        "t2 = time.perf_counter()\n"
        "s.negativity(['我想查一下我的订单'])\n"
        "t3 = time.perf_counter()\n"
        "print(f'{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.3f}')\n"
    )
    figures = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        figures.append([float(x) for x in out.stdout.split()])
    imp, load, first = (sorted(col)[1] for col in zip(*figures, strict=True))
    scorer = get_scorer(config.scorers["zh"])
    print(
        f"model {scorer.id} ({config.scorers['zh'].backend}), calibration v{cal.version} "
        f"({cal.fitted_on})\n"
        f"fresh process, median of 3: import pipeline.score.risk {imp:.2f}s, zh model load "
        f"{load:.2f}s, first utterance {first * 1000:.0f} ms; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    turns = [
        "这是我第三次打电话了，快递一个星期还没送到",
        "每次都说查询，一直没人处理，太差了",
        "算了，我要去投诉",
    ]
    t3 = time.perf_counter()
    scorer.negativity(turns)
    print(f"scoring a call's 3 customer turns: {(time.perf_counter() - t3) * 1000:.0f} ms")

    neutral = ["请问积分怎么兑换话费", "我想查一下我的订单", "能不能帮我改一下收货地址",
               "请问发票怎么开", "在吗", "我想问一下这个套餐怎么办理"]  # fmt: skip
    angry = ["太差了，我要投诉你们", "第三次打电话了还没解决", "你们这是骗人",
             "那我该怎么办，还是不行", "你们到底有没有人管"]  # fmt: skip
    print("helpdesk probe, P(negative):")
    for text, p in zip(neutral + angry, scorer.negativity(neutral + angry), strict=True):
        print(f"  {p:.3f}  {'neutral' if text in neutral else 'angry  '}  {text}")

    texts = [r for r in load_training_texts(DEFAULT_CACHE) if split_of(r.text) == "test"]
    probs = scorer.negativity([r.text for r in texts])
    print(f"per-utterance zh on held-out texts (n={len(texts)}), negative vs rest:")
    for src in sorted({r.source for r in texts}):
        pairs = [(p, r) for p, r in zip(probs, texts, strict=True) if r.source == src]
        acc = sum((p >= 0.5) == (r.label == NEGATIVE) for p, r in pairs) / len(pairs)
        y = [int(r.label == NEGATIVE) for _, r in pairs]
        a = auc([p for p, _ in pairs], y) if 0 < sum(y) < len(y) else float("nan")
        print(f"  {src:14s} n={len(pairs):5d}  accuracy {acc:.4f}  AUC {a:.4f}")
    y = [int(r.label == NEGATIVE) for r in texts]
    print(f"  all            AUC {auc(probs, y):.4f}")

    reviews = load_reviews(DEFAULT_CACHE)
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
    chats = synth_calls(heldout_reviews(reviews, "bench"), args.n, seed=args.seed, chat=True)
    yc = [label for _, label in chats]
    pc = [calibrated(compute_features(t, None, config).z, cal) for t, _ in chats]
    print(
        f"same calls as text-only chats (no times, customer messages split into short turns): "
        f"AUC {auc(pc, yc):.4f}  F1@high {f1_at(pc, yc, config.levels.high):.4f}  "
        f"Brier {brier(pc, yc):.4f}"
    )
    print(
        "English: no labelled English data installs here; the VADER lexicon scores English turns (not measured)."
    )


if __name__ == "__main__":
    main()
