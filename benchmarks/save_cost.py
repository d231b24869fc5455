"""What a save costs in CPU time: a new scored call, the same call saved again with its
metadata moved to another team (its dashboard group changes), and saved again unchanged.
Saving keeps the dashboard's facts (migration 0010, ``pipeline.store.facts``) in the same
transaction; run this from an older tree to see what that adds.

    .venv/bin/python -m benchmarks.save_cost [--calls 300] [--db URL]

Shared 2-core box, SQLite, 300 calls, 2026-12-05, two interleaved rounds (CPU ms per save,
``time.process_time``; main run from a copy of its tree with this script added):

    tree                          new call    moved group   unchanged
    main 2f52509 (no facts)       3.72 3.85    1.53 1.54    1.49 1.48
    with the facts kept           4.82 4.68    2.77 2.88    1.82 1.81
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.schema import CallJob, ItemResult, Result, RubricRef, Transcript, Utterance
from pipeline.store import dispose_engines, open_store

TEXTS = [("agent", "您好，很高兴为您服务"), ("customer", "我的快递还没到"), ("agent", "非常抱歉，我马上为您处理")]  # fmt: skip


def transcript(call_id: str) -> Transcript:
    utts = [Utterance(speaker=spk, start=2.0 * i, end=2.0 * i + 1.8, text=text) for i, (spk, text) in enumerate(TEXTS)]  # fmt: skip
    return Transcript(call_id=call_id, language="zh", duration=8.0, utterances=utts)


def result(call_id: str, n: int) -> Result:
    items = [
        ItemResult(
            id=f"item{k}",
            section="s",
            title=f"item {k}",
            passed=(n + k) % 3 != 0,
            points=10,
            max_points=10,
        )  # fmt: skip
        for k in range(3)
    ]
    earned = sum(i.points for i in items if i.passed)
    return Result(call_id=call_id, rubric=RubricRef(id="zh_ecommerce", version=3), total=earned, max=30, auto_fail=False, needs_review=False, items=items)  # fmt: skip


def cpu_ms_per_call(fn, jobs: list[CallJob]) -> float:
    t0 = time.process_time()
    for job in jobs:
        fn(job)
    return (time.process_time() - t0) / len(jobs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--db", help="a scratch database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.db or f"sqlite:///{Path(tmp) / 'save.db'}")
        jobs = [
            CallJob(
                call_id=f"s{i}",
                source="/dev/null",
                agent_id=f"A{i % 7}",
                team=f"T{i % 3}",
                started_at=f"2026-11-{1 + i % 20:02d}T09:00:00",
            )  # fmt: skip
            for i in range(args.calls)
        ]
        moved = [j.model_copy(update={"team": f"{j.team}-moved"}) for j in jobs]
        docs = {j.call_id: (transcript(j.call_id), result(j.call_id, i)) for i, j in enumerate(jobs)}  # fmt: skip

        def save(job: CallJob) -> None:
            store.save_scored(job, *docs[job.call_id])

        new = cpu_ms_per_call(save, jobs)
        move = cpu_ms_per_call(save, moved)
        same = cpu_ms_per_call(save, moved)
        print(f"{args.calls} calls, {store.engine.dialect.name}: CPU ms per save: new call {new:.2f}, moved to another group {move:.2f}, unchanged {same:.2f}")  # fmt: skip
        dispose_engines()


if __name__ == "__main__":
    main()
