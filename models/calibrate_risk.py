"""Fit the shipped complaint-risk calibration (models/risk/calibration-v<N>.yaml).

Calls are synthesised (pipeline/score/risk/synth.py) from the 'calib' half of the reviews the
dissatisfaction model never trained on; the 'bench' half is left to benchmarks/complaint_risk.py.
Reviewer labels later replace this with ``callqa train risk --labels FILE``.

    .venv/bin/python models/calibrate_risk.py [--n 600] [--seed 5]
"""

from __future__ import annotations

import argparse
import json

from pipeline.score.risk.calibrate import recalibrate
from pipeline.score.risk.corpora import DEFAULT_CACHE, load_reviews
from pipeline.score.risk.synth import heldout_reviews, synth_calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    reviews = heldout_reviews(load_reviews(DEFAULT_CACHE), "calib")
    calls = synth_calls(reviews, args.n, seed=args.seed)
    path, report = recalibrate(
        calls, f"synthetic calls from held-out reviews (calib half), n={args.n}, seed={args.seed}"
    )
    print(path)
    print(json.dumps(report, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
