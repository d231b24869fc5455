"""Fitting the call-level risk weights (versioned calibrations) and the figures that judge them
(AUC, Brier, F1, reliability)."""

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
    RiskConfig,
    load_calibration,
    load_risk_config,
    write_calibration,
)
from pipeline.score.risk.dialogue import load_dialogue_model
from pipeline.score.risk.engine import FEATURES, calibrated, compute_features


def fit_logistic(
    x: np.ndarray,
    y: Sequence[int],
    l2: float = 1.0,
    sample_weight: Sequence[float] | None = None,
    prior: Sequence[float] | None = None,
    prior_bias: float = 0.0,
) -> tuple[float, np.ndarray]:
    """(bias, weights) maximising the likelihood of sigmoid(bias + x·w) with an L2 penalty
    pulling w towards ``prior`` (zeros without one) (Newton; the bias is not penalised;
    Platt's target smoothing keeps a separable set finite)."""
    x = np.asarray(x, float)
    n, d = x.shape
    t = np.asarray(y, float)
    sw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    n_pos, n_neg = sw[t > 0].sum(), sw[t <= 0].sum()
    t = np.where(t > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    xb = np.column_stack([np.ones(n), x])
    penalty = np.full(d + 1, l2)
    penalty[0] = 1e-6
    w0 = np.zeros(d + 1)
    w0[0] = prior_bias
    if prior is not None:
        w0[1:] = np.asarray(prior, float)
    w = w0.copy()
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (sw * (p - t)) + penalty * (w - w0)
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        step *= min(1.0, 2.0 / max(np.abs(step).max(), 1e-12))  # damped: no overshoot
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), w[1:]


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


def _config(config: RiskConfig | str | Path) -> RiskConfig:
    return config if isinstance(config, RiskConfig) else load_risk_config(config)


def feature_names(config: RiskConfig | str | Path = DEFAULT_CONFIG) -> list[str]:
    return list(FEATURES) + [f"signal.{kind}" for kind in _config(config).caps]


def prior_weights(config: RiskConfig | str | Path = DEFAULT_CONFIG) -> list[float]:
    """The configuration's expert weights per feature (1 per signal kind, whose rule weights
    already carry the prior), the centre the fitted weights are pulled towards."""
    config = _config(config)
    return [
        1.0 if name.startswith("signal.") else float(getattr(config.weights, name))
        for name in feature_names(config)
    ]


def feature_matrix(
    calls: Sequence[tuple[Transcript, int]], config_path: RiskConfig | str | Path = DEFAULT_CONFIG
) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Feature rows of the calls, the column names, and the scorer used per language."""
    config = _config(config_path)
    names = feature_names(config)
    rows, scorers = [], {}
    for t, _ in calls:
        f = compute_features(t, None, config)
        scorers[f.language] = f.scorer_id
        vec = f.vector(config.caps)
        rows.append([vec.get(name, 0.0) for name in names])
    return np.asarray(rows, float).reshape(len(rows), len(names)), names, scorers


def recalibrate(
    calls: Sequence[tuple[Transcript, int]],
    fitted_on: str,
    config_path: RiskConfig | str | Path = DEFAULT_CONFIG,
    directory: Path = CALIBRATION_DIR,
    previous: Calibration | None = None,
    sample_weight: Sequence[float] | None = None,
    l2: float = 1.0,
) -> tuple[Path, dict]:
    """Fit the call-level weights on labelled calls (logistic regression over the engine's
    features, L2 ``l2``) and write them as the next calibration version; returns path and
    figures (on the fitting calls)."""
    y = [label for _, label in calls]
    if len(set(y)) < 2:
        raise ValueError("labels need both classes (some 1 and some 0) to calibrate")
    x, names, scorers = feature_matrix(calls, config_path)
    prior = prior_weights(config_path)
    bias, w = fit_logistic(
        x,
        y,
        l2=l2,
        sample_weight=sample_weight,
        prior=prior,
        prior_bias=_config(config_path).weights.bias,
    )
    z = bias + x @ w
    p_new = (1 / (1 + np.exp(-z))).tolist()
    report = {
        "n": len(y),
        "positives": int(sum(y)),
        "auc": round(auc(p_new, y), 4),
        "brier": round(brier(p_new, y), 4),
        "reliability": reliability(p_new, y),
    }
    if previous is not None:
        config = _config(config_path)
        before = []
        for t, _ in calls:
            f = compute_features(t, None, config, previous)
            before.append(calibrated(f.z, previous))
        report["brier_before"] = round(brier(before, y), 4)
    body = {
        "a": 1.0,
        "b": 0.0,
        "fitted_on": fitted_on,
        "l2": l2,
        "prior": "rubrics/risk/model.yaml weights (L2 pulls towards them)",
        "bias": round(bias, 6),
        "weights": {n: round(float(v), 6) for n, v in zip(names, w, strict=True)},
        "scorers": scorers,
        **report,
        "dialogue": (
            load_dialogue_model(_config(config_path).dialogue_path()).name
            if _config(config_path).dialogue
            else None
        ),
    }
    path = write_calibration(body, directory)
    return path, report


def recalibrate_language(
    calls: Sequence[tuple[Transcript, int]],
    language: str,
    fitted_on: str,
    config_path: RiskConfig | str | Path = DEFAULT_CONFIG,
    directory: Path = CALIBRATION_DIR,
) -> tuple[Path, dict]:
    """Keep the latest calibration's weights and fit, for calls in ``language``, their own
    Platt (a, b) on labelled calls of that language; write it as the next version."""
    config = _config(config_path)
    current = load_calibration(config.calibration, directory)
    y = [label for _, label in calls]
    if len(set(y)) < 2:
        raise ValueError("labels need both classes (some 1 and some 0) to calibrate")
    feats = [compute_features(t, None, config, current) for t, _ in calls]
    wrong = sorted({f.language for f in feats} - {language})
    if wrong:
        raise ValueError(
            f"calls in {wrong}, not {language!r}: a Platt per language needs its calls"
        )
    z = np.asarray([f.z for f in feats], float)
    b, w = fit_logistic(z[:, None], y, l2=1e-6)
    p_new = 1 / (1 + np.exp(-(w[0] * z + b)))
    p_old = 1 / (1 + np.exp(-(current.a * z + current.b)))
    report = {
        "a": round(float(w[0]), 6),
        "b": round(float(b), 6),
        "fitted_on": fitted_on,
        "n": len(y),
        "positives": int(sum(y)),
        "brier": round(brier(p_new, y), 4),
        "brier_before": round(brier(p_old, y), 4),
    }
    body = current.model_dump(exclude={"version", "created", "source"})
    body["languages"] = {**(body.get("languages") or {}), language: report}
    return write_calibration(body, directory), report
