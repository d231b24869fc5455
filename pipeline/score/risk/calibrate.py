"""Platt calibration of the risk logit and the figures that judge it (AUC, Brier, reliability)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.schema import Transcript
from pipeline.score.risk.config import (
    CALIBRATION_DIR,
    DEFAULT_CONFIG,
    Calibration,
    load_risk_config,
    write_calibration,
)
from pipeline.score.risk.engine import calibrated, compute_features


def fit_platt(
    z: Sequence[float], y: Sequence[int], l2: float = 1e-3, iters: int = 50
) -> tuple[float, float]:
    """(a, b) maximising the likelihood of sigmoid(a·z + b) (Newton, light L2 on a and b)."""
    x = np.column_stack([np.asarray(z, float), np.ones(len(z))])
    t = np.asarray(y, float)
    # Platt's target smoothing keeps a separable set from running to infinity
    n_pos, n_neg = t.sum(), len(t) - t.sum()
    t = np.where(t > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    w = np.array([1.0, 0.0])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - t) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])


def auc(scores: Sequence[float], y: Sequence[int]) -> float:
    """Area under the ROC curve (rank statistic, ties counted half)."""
    pairs = sorted(zip(scores, y, strict=True))
    n_pos = sum(y)
    n_neg = len(y) - n_pos
    if not n_pos or not n_neg:
        return math.nan
    rank_sum, i = 0.0, 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + j + 1) / 2
        rank_sum += avg_rank * sum(lbl for _, lbl in pairs[i:j])
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def brier(p: Sequence[float], y: Sequence[int]) -> float:
    return float(np.mean((np.asarray(p) - np.asarray(y)) ** 2))


def f1_at(p: Sequence[float], y: Sequence[int], threshold: float) -> float:
    pred = np.asarray(p) >= threshold
    t = np.asarray(y) > 0
    tp = float((pred & t).sum())
    return 2 * tp / max(float(pred.sum() + t.sum()), 1.0)


def reliability(p: Sequence[float], y: Sequence[int], bins: int = 10) -> list[dict]:
    """Per probability bin: count, mean predicted, observed rate."""
    p, y = np.asarray(p), np.asarray(y)
    rows = []
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        mask = (p >= lo) & ((p < hi) if k < bins - 1 else (p <= hi))
        if mask.any():
            rows.append(
                {
                    "bin": f"{lo:.1f}-{hi:.1f}",
                    "n": int(mask.sum()),
                    "predicted": round(float(p[mask].mean()), 3),
                    "observed": round(float(y[mask].mean()), 3),
                }
            )
    return rows


def logits(
    calls: Sequence[tuple[Transcript, int]], config_path: str | Path = DEFAULT_CONFIG
) -> list[float]:
    config = load_risk_config(config_path)
    return [compute_features(t, None, config).z for t, _ in calls]


def recalibrate(
    calls: Sequence[tuple[Transcript, int]],
    fitted_on: str,
    config_path: str | Path = DEFAULT_CONFIG,
    directory: Path = CALIBRATION_DIR,
    previous: Calibration | None = None,
) -> tuple[Path, dict]:
    """Fit (a, b) on labelled calls, write the next calibration version; returns path and figures."""
    y = [label for _, label in calls]
    if len(set(y)) < 2:
        raise ValueError("labels need both classes (some 1 and some 0) to calibrate")
    z = logits(calls, config_path)
    a, b = fit_platt(z, y)
    fitted = Calibration(version=0, a=a, b=b)
    p_new = [calibrated(v, fitted) for v in z]
    report = {
        "n": len(y),
        "positives": int(sum(y)),
        "auc": round(auc(z, y), 4),
        "brier": round(brier(p_new, y), 4),
        "reliability": reliability(p_new, y),
    }
    if previous is not None:
        report["brier_before"] = round(brier([calibrated(v, previous) for v in z], y), 4)
    path = write_calibration(
        {"a": round(a, 6), "b": round(b, 6), "fitted_on": fitted_on, **report}, directory
    )
    return path, report
