"""End-to-end speed of ``callqa score FOLDER`` with complaint risk, and what each stage handles.

Synthesises ``--n`` Chinese customer-service transcripts (the generator of
benchmarks/script_adherence.py, seed 7), puts ASR-like noise on the agent's and, with
``--customer-noise``, the customer's characters, so that customer turns repeat about as
rarely as in real calls (the share of distinct customer texts is printed: the sentiment
models run once per distinct text). Then:

1. per stage, in this process on the first ``--sample`` transcripts, utterances per CPU second
   (transcript loading, rubric checks, each sentiment model on distinct customer turns, the
   rest of the risk engine, form + JSON);
2. ``callqa score FOLDER --rubric R --out DIR --workers W`` as a subprocess for each
   ``--workers`` value: wall seconds, CPU seconds (user + system of it and its workers) and the
   load average, and whether every Result is byte-identical to the first run's.

    .venv/bin/python benchmarks/score_speed.py [--n 1500] [--workers 1 2] [--customer-noise 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import script_adherence as sa  # noqa: E402  (the transcript generator and noise model)


def synthesise(n: int, seed: int, agent_noise: float, customer_noise: float) -> list[dict]:
    rng = random.Random(seed * 1000 + 1)
    out = []
    for transcript, _ in sa.build_set(n, seed):
        t = sa.noisy(transcript, agent_noise, rng)
        for u in t["utterances"]:
            if u["speaker"] == "customer":
                u["text"] = sa.add_noise(u["text"], customer_noise, rng)
        out.append(t)
    return out


def run_cli(folder: Path, rubric: Path, out: Path, workers: int) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, workers included) of ``callqa score``."""
    cmd = [sys.executable, "-m", "pipeline.cli", "score", str(folder), "--rubric", str(rubric)]
    cmd += ["--out", str(out), "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"callqa score failed: {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def stage_rates(files: list[Path], rubric_path: Path) -> None:
    """Utterances per CPU second of each stage, on ``files``, models loaded beforehand."""
    from pipeline.schema import Transcript
    from pipeline.score.form import score_form
    from pipeline.score.risk.config import DEFAULT_CONFIG, load_risk_config
    from pipeline.score.risk.dialogue import blocks_of, load_dialogue_model
    from pipeline.score.risk.engine import assess, call_language, customer_roles
    from pipeline.score.risk.scorers import get_scorer
    from pipeline.scripts_check import check_items, conversation_metrics, load_rubric

    rubric = load_rubric(str(rubric_path))
    config = load_risk_config(DEFAULT_CONFIG)
    rows: list[tuple[str, int, float]] = []

    def timed(name: str, count: int, fn) -> list:
        c0 = time.process_time()
        out = fn()
        rows.append((name, count, time.process_time() - c0))
        return out

    raw = [f.read_text("utf-8") for f in files]
    transcripts = timed(
        "load transcript",
        sum(len(json.loads(r)["utterances"]) for r in raw),
        lambda: [Transcript.model_validate_json(r) for r in raw],
    )
    n_utts = sum(len(t.utterances) for t in transcripts)
    items = timed("rubric checks", n_utts, lambda: [check_items(t, rubric) for t in transcripts])
    scorer = get_scorer(config.scorers[call_language(transcripts[0], config)])
    members = getattr(scorer, "members", [scorer])
    for m in members:  # loaded (and warmed) outside the timing
        m.sentiment(["预热"])
    customer = [
        u.text
        for t in transcripts
        for u in t.utterances
        if u.speaker in customer_roles(t) and u.text.strip()
    ]
    distinct = list(dict.fromkeys(customer))
    for m in members:
        timed(
            f"sentiment {m.id} (distinct customer turns)",
            len(distinct),
            partial(m.sentiment, distinct),
        )
    if config.dialogue is not None:  # the blocks the dialogue model embeds, once each
        model = load_dialogue_model(config.dialogue_path())
        model.embed(["预热"])
        texts = []
        for t in transcripts:
            roles = customer_roles(t)
            blocks = blocks_of(
                [("customer" if u.speaker in roles else "agent", u.text) for u in t.utterances]
            )
            last_agent = max((b for b, blk in enumerate(blocks) if blk[0] == "agent"), default=-1)
            texts += [
                blk[2] for b, blk in enumerate(blocks) if blk[0] == "customer" or b == last_agent
            ]
        distinct_blocks = list(dict.fromkeys(texts))
        timed(
            f"dialogue model {model.id} (distinct embedded blocks)",
            len(distinct_blocks),
            partial(model.embed, distinct_blocks),
        )
    risks = timed(
        "risk features + signals (sentiment, embeddings memoised)",
        n_utts,
        lambda: [assess(t, conversation_metrics(t, rubric.language)) for t in transcripts],
    )
    timed(
        "form + Result JSON",
        n_utts,
        lambda: [
            score_form(t, rubric, i, r).to_json()
            for t, i, r in zip(transcripts, items, risks, strict=True)
        ],
    )
    print(
        f"stages, in one process on {len(files)} transcripts ({n_utts} utterances, "
        f"{len(customer)} customer turns, {len(distinct)} distinct):"
    )
    print(f"  {'stage':<58} {'items':>6} {'CPU s':>7} {'items/s':>9}")
    for name, count, cpu in rows:
        print(f"  {name:<58} {count:>6} {cpu:>7.2f} {count / max(cpu, 1e-9):>9.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--agent-noise", type=float, default=0.1)
    ap.add_argument("--customer-noise", type=float, default=0.2)
    ap.add_argument("--workers", type=int, nargs="*", default=[2])
    ap.add_argument("--sample", type=int, default=200, help="transcripts for the stage table")
    ap.add_argument("--out", type=Path, default=None, help="keep the data here (default: temp)")
    args = ap.parse_args()

    work = args.out or Path(tempfile.mkdtemp(prefix="callqa-speed-"))
    folder = work / "in"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rubric = work / "bench_cs.yaml"
    rubric.write_text(sa.RUBRIC_YAML, encoding="utf-8")
    transcripts = synthesise(args.n, args.seed, args.agent_noise, args.customer_noise)
    for t in transcripts:
        (folder / f"{t['call_id']}.json").write_text(json.dumps(t, ensure_ascii=False), "utf-8")
    customer = [
        u["text"] for t in transcripts for u in t["utterances"] if u["speaker"] == "customer"
    ]
    print(
        f"{args.n} synthetic transcripts (seed {args.seed}; noise: agent {args.agent_noise:.0%}, "
        f"customer {args.customer_noise:.0%}); {sum(len(t['utterances']) for t in transcripts)} "
        f"utterances, {len(customer)} customer turns of which "
        f"{len(set(customer)) / max(len(customer), 1):.0%} distinct"
    )
    if args.sample:
        stage_rates(sorted(folder.glob("*.json"))[: args.sample], rubric)
    first = None
    for workers in args.workers:
        out = work / f"out_w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        wall, cpu = run_cli(folder, rubric, out, workers)
        results = {p.name: p.read_bytes() for p in sorted(out.glob("*.json"))}
        same = (
            ""
            if first is None
            else f"; identical to --workers {args.workers[0]}: {results == first}"
        )
        first = first or results
        print(
            f"callqa score FOLDER (risk on) --workers {workers}: {len(results)} results in "
            f"{wall:.1f} s wall, {cpu:.1f} CPU s; load average {load:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after{same}"
        )
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
