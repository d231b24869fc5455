"""The dashboard's materialised figures (pipeline.store.facts, migration 0010) after every
write that changes them: a save, a re-score (new result version), a metadata change, an
override, a confirmation, a dispute and its ruling. After each, on SQLite and PostgreSQL:

- the stored sums equal a rebuild from the base tables (``rebuild_facts``, rolled back);
- the dashboard's KPIs and item counts equal a recomputation in Python from what the store
  says of each call (its current result, its final score with the reviewers' verdicts);
- every scope (all calls, a team lead, an agent) sees the figures of its own calls only.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.schema import CallJob
from pipeline.store import models as m
from pipeline.store import open_store
from pipeline.store.facts import rebuild_facts
from pipeline.store.review import QueueFilter, ReviewStore, Scope
from tests.builders import FAST_HASHER, make_result, make_transcript

NOVEMBER = QueueFilter(date_from="2026-11-01", date_to="2026-11-30")
ALL = Scope(user_id=1, all_calls=True)
# call id -> (agent, team, day, needs_review, auto_fail, risk level)
CALLS = {
    "f1": ("A1", "T1", "01", True, False, "high"),
    "f2": ("A1", "T1", "01", False, False, "low"),
    "f3": ("A2", "T2", "02", False, True, "medium"),
    "f4": ("A3", "华东一组", "03", True, False, "low"),
    "f5": ("A3", "华东一组", "03", False, False, None),
}
SCOPES = {
    "all": ALL,
    "lead": Scope(user_id=2, teams=("T1", "华东一组")),
    "agent": Scope(user_id=3, agent_id="A2"),
}


def job(call_id: str, **change) -> CallJob:
    agent, team, day, *_ = CALLS[call_id]
    fields = dict(agent_id=agent, agent_name=f"agent {agent}", team=team, started_at=f"2026-11-{day}T09:00:00")  # fmt: skip
    return CallJob(call_id=call_id, source="/dev/null", **(fields | change))


def result(call_id: str, needs_review: bool, auto_fail: bool, level: str | None):
    r = make_result(call_id, needs_review, auto_fail, level or "low")
    return r.model_copy(update={"risk": None}) if level is None else r


def stored_sums(s: Session) -> tuple[set, set]:
    """(dashboard_days rows, dashboard_items rows) without ids and empty groups."""
    D, DI = m.DashboardDay, m.DashboardItem  # noqa: N806
    days = {tuple(r) for r in s.execute(select(*[c for c in D.__table__.columns if c.name != "id"]).where(D.calls > 0))}  # fmt: skip
    items = {tuple(r) for r in s.execute(select(*[c for c in DI.__table__.columns if c.name != "id"]))}  # fmt: skip
    return days, items


def assert_sums_equal_a_rebuild(store) -> None:
    with Session(store.engine) as s:
        kept = stored_sums(s)
        s.rollback()
    with Session(store.engine) as s:
        rebuild_facts(s)
        s.flush()
        rebuilt = stored_sums(s)
        s.rollback()
    assert kept[0] == rebuilt[0]
    assert kept[1] == rebuilt[1]


def recomputed(reviews: ReviewStore, scope: Scope) -> dict:
    """The KPIs and item counts of the calls in ``scope``, in Python, from the store's
    answers about each call (its result row, its final score)."""
    out = dict(calls=0, score=[], auto_fail=0, high=0, reviewed=0, disputed=0, items=0, overturned=0, overturned_calls=0)  # fmt: skip
    verdicts: dict[str, list[int]] = {}
    with reviews.store.session() as s:
        rows = s.execute(select(m.Call, m.Result).join(m.Result, m.Call.current_result_id == m.Result.id)).all()  # fmt: skip
    for call, res in rows:
        if not scope.reaches(call):
            continue
        final = reviews.final_score(ALL, call.call_id)
        out["calls"] += 1
        out["score"].append(100 * res.total / res.max)
        out["auto_fail"] += res.auto_fail
        out["high"] += res.risk_level == "high"
        out["reviewed"] += final.review_status == "reviewed"
        out["disputed"] += final.review_status == "disputed"
        if final.review_status == "reviewed":
            out["items"] += len(final.items)
            changed = sum(i.passed != i.machine_passed for i in final.items)
            out["overturned"] += changed
            out["overturned_calls"] += changed > 0
        for i in final.items:
            pf = verdicts.setdefault(i.id, [0, 0])
            pf[0] += i.machine_passed is True
            pf[1] += i.machine_passed is False
    out["mean"] = sum(out.pop("score")) / out["calls"] if out["calls"] else None
    out["verdicts"] = verdicts
    return out


def assert_figures(reviews: ReviewStore) -> None:
    assert_sums_equal_a_rebuild(reviews.store)
    for name, scope in SCOPES.items():
        want = recomputed(reviews, scope)
        k = reviews.dashboard(scope, NOVEMBER).kpis
        got = dict(calls=k.calls, auto_fail=k.auto_fail, high=k.high_risk, reviewed=k.reviewed, disputed=k.disputed, items=k.reviewed_items, overturned=k.overturned_items, overturned_calls=k.overturned_calls)  # fmt: skip
        assert got == {k: v for k, v in want.items() if k in got}, name
        if want["mean"] is None:
            assert k.mean_score_pct is None, name
        else:
            assert k.mean_score_pct == pytest.approx(want["mean"], rel=1e-12), name
        items = {r.item_id: [r.passed, r.failed] for r in reviews.item_rows(scope, NOVEMBER)}
        assert items == want["verdicts"], name
        # the queue counts the same calls (the dashboard's drill-downs)
        assert reviews.queue(scope, NOVEMBER).total == k.calls, name
        over = NOVEMBER.model_copy(update={"review_status": "reviewed", "overturned": True})
        assert reviews.queue(scope, over).total == k.overturned_calls, name
        reviewed = NOVEMBER.model_copy(update={"review_status": "reviewed"})
        assert reviews.queue(scope, reviewed).total == k.reviewed, name


def test_figures_follow_every_write(store_url: str) -> None:
    store = open_store(store_url)
    reviews = ReviewStore(store, FAST_HASHER)
    admin = reviews.add_user("boss", "longpassword", "admin")
    agent = reviews.add_user("a1", "longpassword", "agent", "A1")
    boss, a1 = Scope(user_id=admin.id, all_calls=True), Scope(user_id=agent.id, agent_id="A1")
    for call_id, (_a, _t, _d, review, fail, level) in CALLS.items():
        store.save_scored(job(call_id), make_transcript(call_id), result(call_id, review, fail, level))  # fmt: skip
        assert_figures(reviews)
    with store.session() as s:
        assert s.scalar(select(m.CallFact.call_pk).limit(1)) is not None

    # re-score f2 (a new result version: now auto-fail, high risk)
    store.save_scored(job("f2"), make_transcript("f2"), result("f2", True, True, "high"))
    assert_figures(reviews)
    # metadata moves f3 to another team and day
    store.save_scored(job("f3", team="T1", started_at="2026-11-05T10:00:00"), make_transcript("f3"), result("f3", False, True, "medium"))  # fmt: skip
    assert_figures(reviews)

    def item(call_id: str, item_id: str) -> int:
        return next(i.item_result_id for i in reviews.final_score(boss, call_id).items if i.id == item_id)  # fmt: skip

    # a review overturns an item of f1; a confirmation reviews f4 (nothing overturned)
    reviews.override(boss, "f1", item("f1", "apology"), True, "said sorry")
    assert_figures(reviews)
    reviews.confirm(boss, "f4")
    assert_figures(reviews)
    # an agent disputes f2; the ruling upholds it (overturned)
    dispute = reviews.dispute(a1, "f2", item("f2", "no_forbidden"), "misheard")
    assert_figures(reviews)
    assert reviews.dashboard(ALL, NOVEMBER).kpis.disputed == 1
    reviews.rule(boss, dispute, upheld=True, comment="agreed")
    assert_figures(reviews)
    # re-scoring a reviewed call carries the verdicts over to the new version
    store.save_scored(job("f1"), make_transcript("f1"), result("f1", False, False, "medium"))
    assert_figures(reviews)
    k = reviews.dashboard(ALL, NOVEMBER).kpis
    assert (k.calls, k.reviewed, k.disputed) == (5, 3, 0)
    assert k.overturned_items >= 2 and k.overturned_calls == 2


def test_each_scope_sees_only_its_figures(store_url: str) -> None:
    """The facts' scope condition (Scope.on) per role: the dashboard, its rankings and the
    report's breakdown hold the calls of the scope only."""
    store = open_store(store_url)
    reviews = ReviewStore(store, FAST_HASHER)
    for call_id, (_a, _t, _d, review, fail, level) in CALLS.items():
        store.save_scored(job(call_id), make_transcript(call_id), result(call_id, review, fail, level))  # fmt: skip
    expect = {
        "all": ({"A1", "A2", "A3"}, {"T1", "T2", "华东一组"}, 5),
        "lead": ({"A1", "A3"}, {"T1", "华东一组"}, 4),
        "agent": ({"A2"}, {"T2"}, 1),
    }
    for name, scope in SCOPES.items():
        agents, teams, n = expect[name]
        d = reviews.dashboard(scope, QueueFilter())
        assert {r.key for r in d.agents} == agents, name
        assert {r.key for r in d.teams} == teams, name
        assert d.kpis.calls == n, name
        assert set(reviews.breakdown(scope, QueueFilter(), "agent_id")) == agents, name
        assert sum(r.passed + r.failed for r in reviews.item_rows(scope, QueueFilter())) == 3 * n  # fmt: skip
        # asking for another's team gives nothing, not their figures
        if name != "all":
            assert reviews.dashboard(scope, QueueFilter(team="T2" if name == "lead" else "T1")).kpis.calls == 0  # fmt: skip


def test_migration_0010_backfills_an_existing_store(store_url: str) -> None:
    """A store of 0009 (calls, a review, a dispute) migrated to 0010: the facts are built
    from what is stored; down again drops the tables."""
    from alembic import command
    from sqlalchemy import inspect

    from pipeline.store.db import WRITE_OPTION, alembic_config

    store = open_store(store_url)
    reviews = ReviewStore(store, FAST_HASHER)
    boss = Scope(user_id=reviews.add_user("boss", "longpassword", "admin").id, all_calls=True)
    for call_id, (_a, _t, _d, review, fail, level) in CALLS.items():
        store.save_scored(job(call_id), make_transcript(call_id), result(call_id, review, fail, level))  # fmt: skip
    apology = next(i.item_result_id for i in reviews.final_score(boss, "f3").items if i.id == "apology")  # fmt: skip
    reviews.override(boss, "f3", apology, True)
    before = reviews.dashboard(ALL, NOVEMBER)
    with store.engine.execution_options(**{WRITE_OPTION: True}).connect() as conn:
        command.downgrade(alembic_config(conn), "0009")
        conn.commit()
        assert "call_facts" not in inspect(conn).get_table_names()
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
    assert reviews.dashboard(ALL, NOVEMBER) == before
    assert before.kpis.calls == 5 and before.kpis.overturned_items == 1
    assert_figures(reviews)


@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)  # fmt: skip
def test_concurrent_writers_of_one_group(store_url: str, monkeypatch) -> None:
    """PostgreSQL, READ COMMITTED: while one save of a group's call has refreshed the sums
    but not yet committed (held open half a second), another save of the same group
    starts. It waits for the first at the group's lock and then sums both calls; without
    the lock it would sum only its own and overwrite the first's."""
    import threading
    import time

    import pipeline.store.saves as saves

    store = open_store(store_url)
    reviews = ReviewStore(store, FAST_HASHER)
    real = saves.refresh_facts

    def held_open(s, call) -> None:
        real(s, call)
        if threading.current_thread().name == "first":
            time.sleep(0.5)  # the transaction stays open: its call is not committed yet

    monkeypatch.setattr(saves, "refresh_facts", held_open)

    def save(call_id: str) -> None:
        same = CallJob(call_id=call_id, source="/dev/null", agent_id="A1", team="T1", started_at="2026-11-07T09:00:00")  # fmt: skip
        store.save_scored(same, make_transcript(call_id), result(call_id, False, call_id == "x2", "low"))  # fmt: skip

    save("x0")  # the group exists
    first = threading.Thread(target=save, args=("x1",), name="first")
    first.start()
    time.sleep(0.25)
    save("x2")
    first.join()
    k = reviews.dashboard(ALL, NOVEMBER).kpis
    assert (k.calls, k.auto_fail) == (3, 1)
    assert_sums_equal_a_rebuild(store)
