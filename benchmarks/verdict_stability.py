"""Which sample verdicts are borderline: each call scored again under last-bit noise.

Two CPUs of one machine kind (AMD Zen with AVX-512 VNNI, Intel Xeon with AMX) round float
sums differently; Whisper's beam search can turn such a difference into other words, and a
borderline rubric item into another verdict. Pinned mode (``QA_CPU_ISA=pinned``) pins the
kernels, but a golden verdict must not rest on the last bit of a float anyway. This scores
every call of an archive as the nightly flow does (``CallProcessor.analyse``: decode, ASR,
roles, redaction, rubric; no risk needed for verdicts), once as the machine gives it and
then ``--runs`` times with seeded Gaussian noise of ``--noise`` (default 1e-6: a few float32
rounding steps of the log-mel features, which lie around 1) added to every chunk's log-mel
features, and prints for each expected item how many runs agree with
``samples/expected.yaml``. A golden verdict should hold in every run. The first line of the
summary is the item-verdict accuracy of the clean run: how many item verdicts agree with a
human reviewer's (n/a counts as a verdict: the item must come out not applicable).

    .venv/bin/python benchmarks/verdict_stability.py [--runs 6] [--noise 1e-6] \\
        [--set beam_size=5 --set asr_chunk_seconds=20] [--call c01-compliant] [--language zh]

The Chinese sample calls (``--language zh``) are decoded by the default multilingual model
(``base``, installed by ``make setup``); ``--runs 0`` gives the item-verdict accuracy alone.

Exits 1 when an expected verdict changed in any run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pipeline.cpu_isa import apply_cpu_isa_from_env  # noqa: E402

apply_cpu_isa_from_env()

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from pipeline.archive import discover  # noqa: E402
from pipeline.config import load_settings  # noqa: E402
from pipeline.process import CallProcessor  # noqa: E402
from pipeline.transcribe import batching  # noqa: E402
from pipeline.transcribe.decode_config import asr_config  # noqa: E402

ARCHIVE = ROOT / "samples" / "archive"
EXPECTED = ROOT / "samples" / "expected.yaml"


class FeatureNoise:
    """Wraps the ASR front end: adds seeded N(0, scale) noise to each window's features."""

    def __init__(self, features):
        self._features = features
        self.scale = 0.0
        self.rng = np.random.default_rng(0)

    def __call__(self, model, audio):
        features = self._features(model, audio)
        if self.scale:
            features = features + self.rng.normal(0, self.scale, features.shape).astype(
                features.dtype
            )
        return features


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=ARCHIVE)
    parser.add_argument("--runs", type=int, default=6, help="noisy runs after the clean one")
    parser.add_argument("--noise", type=float, default=1e-6)
    parser.add_argument("--set", action="append", default=[], help="setting=value override")
    parser.add_argument("--call", action="append", default=[], help="only these call ids")
    parser.add_argument("--language", help="only the calls in this language (en, zh)")
    args = parser.parse_args()

    overrides = dict(part.split("=", 1) for part in args.set)
    expected = {
        k: v
        for k, v in yaml.safe_load(EXPECTED.read_text(encoding="utf-8"))["calls"].items()
        if v["status"] == "scored"
        and (not args.call or k in args.call)
        and args.language in (None, v.get("language"))
    }
    jobs = [j for j in discover(args.archive) if j.call_id in expected]
    noise = FeatureNoise(batching._features)
    batching._features = noise
    agree: dict[tuple[str, str], int] = defaultdict(int)
    clean_misses: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=f"sqlite:///{tmp}/stability.db", **overrides)
        processor = CallProcessor(settings)
        print(f"decode: {asr_config(settings).model_dump_json(include={'beam_size', 'chunk_length_s', 'batch_size'})}"
              f"  cpu_isa={settings.cpu_isa}  noise={args.noise:g}  runs=1+{args.runs}")  # fmt: skip
        for run in range(args.runs + 1):
            noise.scale = args.noise if run else 0.0
            noise.rng = np.random.default_rng(run)
            for job in jobs:
                _transcript, result = processor.analyse(job)
                verdicts = {
                    item.id: item.passed if item.applicable else "n/a" for item in result.items
                }
                for item_id, want in expected[job.call_id]["items"].items():
                    agree[job.call_id, item_id] += verdicts.get(item_id) == want
                    if not run and verdicts.get(item_id) != want:
                        clean_misses.append(
                            f"{job.call_id}.{item_id}: got {verdicts.get(item_id)}, want {want}"
                        )
            print(f"run {run} done", file=sys.stderr)

    total = args.runs + 1
    n = len(agree)
    right = n - len(clean_misses)
    print(f"item-verdict accuracy (clean run): {right}/{n} = {right / max(n, 1):.1%}")
    for miss in clean_misses:
        print(f"  differs: {miss}")
    shaky = {key: n for key, n in agree.items() if n < total}
    print(f"{'call':24} {'item':18} {'expected':8} agree")
    for (call_id, item_id), n in sorted(agree.items()):
        if n < total:
            want = expected[call_id]["items"][item_id]
            print(f"{call_id:24} {item_id:18} {want!s:8} {n}/{total}")
    print(f"stable expected verdicts: {len(agree) - len(shaky)}/{len(agree)}")
    return 1 if shaky else 0


if __name__ == "__main__":
    sys.exit(main())
