"""How fast the review queue answers with 100,000 scored calls in SQLite.

Fills a fresh SQLite store (migrated to head) with N calls, their current results and three
item results each (bulk inserts, not the per-call save path), then times the first page of
the queue for a reviewer (default priority order, and with filters) and for an agent, and
prints SQLite's query plan of the default query so a missing index shows.

    .venv/bin/python benchmarks/review_queue.py [--calls 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, text, update

from pipeline.store import dispose_engines, open_store
from pipeline.store import models as m
from pipeline.store.review import QueueFilter, ReviewStore, Scope

ITEMS = ("greeting", "verify_identity", "no_forbidden")


def fill(store, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    now = m.utcnow()
    with store.engine.begin() as conn:
        conn.execute(
            insert(m.Call),
            [
                {
                    "id": i + 1,
                    "call_id": f"2026{i:08d}",
                    "agent_id": f"A{i % 400:03d}",
                    "agent_name": f"agent {i % 400}",
                    "team": f"T{i % 20}",
                    "started_at": f"2026-11-{1 + i % 28:02d}T{8 + i % 10:02d}:00:00",
                    "status": "scored",
                    "source": f"/archive/{i}.wav",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(m.Transcript),
            [{"id": 1, "call_pk": 1, "sha256": "0" * 64, "document": {}, "created_at": now}],
        )
        results, items = [], []
        for i in range(n):
            level = rng.choices(("low", "medium", "high"), (0.8, 0.15, 0.05))[0]
            passed = [rng.random() > 0.1 for _ in ITEMS]
            auto_fail = not passed[2]
            results.append(
                {
                    "id": i + 1,
                    "call_pk": i + 1,
                    "transcript_id": 1,
                    "fingerprint": f"{i:064d}",
                    "rubric_id": "zh_ecommerce",
                    "rubric_version": "3",
                    "total": 0.0 if auto_fail else 10.0 * sum(passed),
                    "max": 30.0,
                    "auto_fail": auto_fail,
                    "needs_review": auto_fail or level == "high" or rng.random() < 0.05,
                    "risk_score": {"low": 0.1, "medium": 0.5, "high": 0.9}[level] * rng.random(),
                    "risk_level": level,
                    "document": {},
                    "created_at": now,
                }
            )
            items += [
                {
                    "result_id": i + 1,
                    "position": k,
                    "item_id": item,
                    "section": "s",
                    "passed": p,
                    "points": 10.0,
                    "max_points": 10.0,
                    "critical": item == "no_forbidden",
                    "needs_review": False,
                    "applicable": True,
                    "evidence": [],
                }
                for k, (item, p) in enumerate(zip(ITEMS, passed, strict=True))
            ]
        conn.execute(insert(m.Result), results)
        conn.execute(insert(m.ItemResult), items)
        conn.execute(update(m.Call).values(current_result_id=m.Call.id))
        conn.execute(text("ANALYZE"))


def timed(fn, repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), max(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = open_store(url)
        t0 = time.perf_counter()
        fill(store, args.calls)
        print(f"filled {args.calls} calls (+{3 * args.calls} item results) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        reviews = ReviewStore(store)
        reviewer = Scope(user_id=1, all_calls=True)
        agent = Scope(user_id=2, agent_id="A007")
        cases = [
            ("reviewer, default priority order", reviewer, QueueFilter()),
            ("reviewer, page 20", reviewer, QueueFilter(page=20)),
            ("reviewer, risk=high", reviewer, QueueFilter(risk_level="high")),
            ("reviewer, team=T3", reviewer, QueueFilter(team="T3")),
            (
                "reviewer, item_failed=verify_identity",
                reviewer,
                QueueFilter(item_failed="verify_identity"),
            ),  # fmt: skip
            (
                "reviewer, status=reviewed (none yet)",
                reviewer,
                QueueFilter(review_status="reviewed"),
            ),  # fmt: skip
            (
                "reviewer, date 2026-11-05, newest",
                reviewer,
                QueueFilter(date_from="2026-11-05", date_to="2026-11-05", sort="newest"),
            ),  # fmt: skip
            ("agent A007 (own calls only)", agent, QueueFilter()),
        ]
        print(f"first page (50 rows) of the review queue, {args.calls} calls, median/max of {args.repeat}:")  # fmt: skip
        for name, user, f in cases:
            rows = len(reviews.queue(user, f).rows)
            med, worst = timed(lambda u=user, f=f: reviews.queue(u, f), args.repeat)
            print(f"  {name:45s} {med:8.1f} ms  (max {worst:.1f} ms, {rows} rows)")
        with store.engine.connect() as conn:
            sql = (
                "SELECT calls.id FROM calls JOIN results ON calls.current_result_id = results.id "
                "LEFT OUTER JOIN call_reviews ON call_reviews.call_pk = calls.id "
                "AND call_reviews.result_id = results.id ORDER BY results.needs_review DESC, "
                "results.auto_fail DESC, results.risk_score DESC, results.id DESC LIMIT 51"
            )
            print("query plan of the default order:")
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql):
                print("  ", row[-1])
        dispose_engines()


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
