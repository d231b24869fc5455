"""How fast the dashboard answers with 100,000 scored calls (SQLite, or PostgreSQL).

Fills a fresh store with N calls, their current results and three item results each (the
review-queue benchmark's bulk fill), signs in over HTTP as a manager, a team lead and an
agent, and times whole page requests (server time: queries and rendering, through the ASGI
app in-process; the browser's own paint is not included): the first paint (the default
four weeks, every call) and filter changes (a team, an agent, a risk level, a week view).

    .venv/bin/python benchmarks/dashboard.py [--calls 100000] [--repeat 5]
        [--db postgresql+psycopg://127.0.0.1:5432/test]   (a scratch database: emptied)

Targets (issue 32): first paint under 500 ms, a filter change under 300 ms. The fill bypasses
the save path, so the dashboard's facts are built after it with ``rebuild_facts`` (what
migration 0010 does for an existing store). Shared 2-core box (load average 5-8), median of
3, 2026-12-05; "before" is main at 2f52509 run in the same session on the same box:

    page                               SQLite before/after    PostgreSQL 15 before/after
    first paint (100,000 calls)        2239 ms ->  151 ms       712 ms -> 115 ms
    filter: team=T3 (5,000 calls)       185 ms ->   55 ms       365 ms ->  67 ms
    filter: agent=A007                   52 ms ->   52 ms       192 ms ->  57 ms
    filter: risk=high                  1037 ms ->  115 ms       443 ms ->  96 ms
    one week, by week                   689 ms ->  100 ms       550 ms ->  89 ms
    team lead (2 teams, 10,000 calls)   376 ms ->   56 ms       394 ms ->  65 ms
    agent (own calls)                    47 ms ->   68 ms       155 ms ->  56 ms
    CSV export (items)                 2132 ms ->  128 ms       609 ms ->  81 ms

Before, each page made three passes over the period's calls and item results (by day, by
agent x team, by item) and the filter menus a DISTINCT over every call and item result;
now every figure is a sum over ``dashboard_days`` / ``dashboard_items`` (one row per day and
dimension values: ~8,000 and ~24,000 rows for these 100,000 calls) and the menus read the
same tables. Building the facts of 100,000 calls: 11 s (SQLite), 17 s (PostgreSQL).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import text

from benchmarks.review_queue import fill, timed
from pipeline.app import create_app
from pipeline.store import dispose_engines, open_store
from pipeline.store import models as m
from pipeline.store.facts import rebuild_facts
from pipeline.store.review import ReviewStore

PASSWORD = "benchmark-pw"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def login(app, name: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = CSRF.search(client.get("/login").text).group(1)
    r = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})  # fmt: skip
    assert r.status_code == 303, r.text
    return client


def empty_postgres(url: str) -> None:
    store = open_store(url)
    with store.engine.begin() as conn:
        tables = ", ".join(t.name for t in reversed(m.Base.metadata.sorted_tables))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    dispose_engines()


def run(url: str, calls: int, repeat: int, var: Path) -> None:
    store = open_store(url)
    t0 = time.perf_counter()
    fill(store, calls)
    t1 = time.perf_counter()
    with store.transaction("cannot build the dashboard's facts") as s:
        rebuild_facts(s)  # the bulk fill bypasses the save path (migration 0010's backfill)
    print(f"facts of {calls} calls built in {time.perf_counter() - t1:.1f} s")
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    print(f"{store.engine.dialect.name}: filled {calls} calls (+{3 * calls} item results) in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    cheap = ReviewStore(store, PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    cheap.add_user("mgr", PASSWORD, "manager")
    cheap.add_user("lead", PASSWORD, "team_lead", teams=["T3", "T4"])
    cheap.add_user("agent", PASSWORD, "agent", "A007")
    app = create_app(url, var_dir=var, secret_key="benchmark-only")
    nov = "/dashboard?date_from=2026-11-01&date_to=2026-11-28"
    cases = [
        ("mgr", "first paint (4 weeks, all calls)", "/dashboard"),
        ("mgr", "filter: team=T3", f"{nov}&team=T3"),
        ("mgr", "filter: agent=A007", f"{nov}&agent_id=A007"),
        ("mgr", "filter: risk=high", f"{nov}&risk_level=high"),
        (
            "mgr",
            "filter: one week, by week",
            "/dashboard?date_from=2026-11-08&date_to=2026-11-14&grain=week",
        ),  # fmt: skip
        ("lead", "team lead first paint (2 teams)", "/dashboard"),
        ("agent", "agent first paint (own calls)", "/dashboard"),
        ("mgr", "CSV export (items)", "/dashboard/export.csv?table=items"),
    ]
    clients = {who: login(app, who) for who in ("mgr", "lead", "agent")}
    print(f"dashboard page requests, median/max of {repeat} (after one warm-up):")
    for who, name, path in cases:
        client = clients[who]
        assert client.get(path).status_code == 200, path
        med, worst = timed(lambda c=client, p=path: c.get(p), repeat)
        print(f"  {name:40s} {med:8.1f} ms  (max {worst:.1f} ms)")
    dispose_engines()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", default=None, help="a scratch PostgreSQL URL (emptied first)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db:
            empty_postgres(args.db)
            run(args.db, args.calls, args.repeat, Path(tmp) / "var")
        else:
            run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.calls, args.repeat, Path(tmp) / "var")


if __name__ == "__main__":
    from pipeline.config import enforce_offline

    enforce_offline()  # no Hugging Face hub at run time
    main()
