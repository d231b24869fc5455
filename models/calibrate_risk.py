"""Fit the shipped complaint-risk weights (models/risk/calibration-v<N>.yaml).

Calls are synthesised (pipeline/score/risk/synth.py) from the 'calib' half of the held-out
reviews (no utterance model trained on them), half as text-only chats; the 'bench' half is left
to benchmarks/complaint_risk.py. ``callqa train risk --labels FILE`` refits on reviewer labels
plus these calls.

    .venv/bin/python models/calibrate_risk.py [--n 200] [--seed 5]
"""

from __future__ import annotations

import argparse
import json

from pipeline.config import PROJECT_ROOT
from pipeline.score.risk.calibrate import recalibrate, recalibrate_language
from pipeline.score.risk.config import load_risk_config
from pipeline.score.risk.scorers import get_scorer, memo_on_disk
from pipeline.score.risk.synth import calibration_calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--l2", type=float, default=20.0)
    ap.add_argument(
        "--language",
        help="keep the latest weights and fit only this language's own Platt (a, b) on the "
        "synthetic calls (zh): calibration v5 on top of v4's weights fitted on real dialogues",
    )
    args = ap.parse_args()
    calls = calibration_calls(args.n, seed=args.seed)
    scorer = get_scorer(load_risk_config().scorers["zh"])
    fitted_on = (
        f"synthetic calls and chats from held-out reviews (calib half), n={args.n}, "
        f"seed={args.seed}"
    )
    if args.language:
        with memo_on_disk(scorer, PROJECT_ROOT / "var" / "risk"):
            path, report = recalibrate_language(calls, args.language, fitted_on)
        print(path)
        print(json.dumps(report, ensure_ascii=False, indent=1))
        return
    with memo_on_disk(scorer, PROJECT_ROOT / "var" / "risk"):
        path, report = recalibrate(
            calls,
            f"synthetic calls and chats from held-out reviews (calib half), n={args.n}, "
            f"seed={args.seed}",
            l2=args.l2,
        )
    print(path)
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
