"""The dashboard's materialised figures (migration 0010): one ``call_facts`` row per scored
call, their sums per day and dimension values in ``dashboard_days``, and the machine's item
verdicts of those calls in ``dashboard_items``.

A call's fact is what it adds to every figure of the dashboard and ``callqa report``
(:data:`~pipeline.store.models.FACT_MEASURES`): computed from the base tables (the call, its
current result and items, its ``call_reviews`` row and the latest human verdicts) by
:func:`compute_facts`, the one definition of those figures. :func:`refresh_facts` rewrites a
call's fact and recomputes the sums of the groups it left and joined, in the transaction
that changed the call (saved, re-scored, reviewed, disputed, ruled on), so the dashboard
never reads a figure its queue would not count. :func:`rebuild_facts` fills all three tables
from scratch (the migration's backfill, bulk loads).

Concurrent writers (PostgreSQL, READ COMMITTED): a writer locks the ``dashboard_days`` rows
of its groups (created if missing, in key order) before it sums them again, so the second
writer of a group waits for the first and then sums the committed facts of both.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.store import models as m
from pipeline.store.verdicts import latest_verdicts, verdict_changed

DIMENSIONS = m.FACT_DIMENSIONS
MEASURES = m.FACT_MEASURES
ITEM_DIMENSIONS = tuple(d for d in DIMENSIONS if d != "agent_name")
BATCH = 5000  # rows per INSERT of a rebuild


def group_key(fact: dict[str, Any]) -> str:
    """The key of the group (day and dimension values) a fact row belongs to."""
    values = [fact.get(name) for name in DIMENSIONS]
    return hashlib.sha256(json.dumps(values, ensure_ascii=False).encode()).hexdigest()


def _pct(total: float | None, maximum: float | None) -> float | None:
    if total is None or not maximum or maximum <= 0:
        return None
    return 100.0 * total / maximum


def compute_facts(s: Session, call_pks: list[int] | None = None) -> list[dict[str, Any]]:
    """The fact rows (``call_facts`` columns) of the scored calls ``call_pks`` (None: every
    scored call), from the base tables."""
    C, R, CR, IR = m.Call, m.Result, m.CallReview, m.ItemResult  # noqa: N806
    q = (
        select(
            C.id,
            R.id,
            C.started_at,
            C.agent_id,
            C.agent_name,
            C.team,
            C.queue,
            C.language,
            R.rubric_id,
            R.rubric_version,
            R.risk_level,
            R.total,
            R.max,
            R.auto_fail,
            R.needs_review,
            R.risk_score,
            CR.status,
            CR.final_total,
            CR.final_max,
        )  # fmt: skip
        .select_from(C)
        .join(R, C.current_result_id == R.id)
        .outerjoin(CR, and_(CR.call_pk == C.id, CR.result_id == R.id))
    )
    if call_pks is not None and len(call_pks) == 1:  # one call: its own actions (indexed)
        current = s.scalar(select(C.current_result_id).where(C.id == call_pks[0]))
        last = latest_verdicts(current, call_pk=call_pks[0])
    else:
        last = latest_verdicts()
    items = (
        select(
            IR.result_id,
            func.count(),
            func.coalesce(func.sum(case((verdict_changed(last), 1), else_=0)), 0),
            func.coalesce(
                func.sum(case((and_(IR.applicable.is_(True), IR.passed.is_(False)), 1), else_=0)), 0
            ),  # fmt: skip
        )
        .select_from(C)
        .join(IR, IR.result_id == C.current_result_id)
        .outerjoin(last, last.c.item_result_id == IR.id)
        .group_by(IR.result_id)
    )
    if call_pks is not None:
        q = q.where(C.id.in_(call_pks))
        items = items.where(C.id.in_(call_pks))
    counts = {rid: (n, changed, errors) for rid, n, changed, errors in s.execute(items)}
    out = []
    for row in s.execute(q):
        (pk, rid, started, agent, name, team, queue, language, rubric, version, level,
         total, maximum, auto_fail, needs_review, risk, status, f_total, f_max) = row  # fmt: skip
        status = status or "auto"
        n_items, changed, errors = counts.get(rid, (0, 0, 0))
        reviewed = status == "reviewed"
        score = _pct(total, maximum)
        final = _pct(total if f_total is None else f_total, maximum if f_max is None else f_max)  # fmt: skip
        fact: dict[str, Any] = {
            "call_pk": pk,
            "result_id": rid,
            "day": started[:10] if started is not None else None,
            "agent_id": agent,
            "agent_name": name,
            "team": team,
            "queue": queue,
            "language": language,
            "rubric_id": rubric,
            "rubric_version": version,
            "risk_level": level,
            "calls": 1,
            "score_sum": score or 0.0,
            "scored": int(score is not None),
            "auto_fail": int(bool(auto_fail)),
            "high_risk": int(level == "high"),
            "medium_risk": int(level == "medium"),
            "low_risk": int(level == "low"),
            "no_risk": int(level is None),
            "risk_sum": risk or 0.0,
            "risk_scored": int(risk is not None),
            "needs_review": int(bool(needs_review)),
            "error_calls": int(errors > 0),
            "reviewed": int(reviewed),
            "disputed": int(status == "disputed"),
            "reviewed_items": n_items if reviewed else 0,
            "overturned_items": changed if reviewed else 0,
            "overturned_calls": int(reviewed and changed > 0),
            "final_score_sum": final or 0.0,
            "final_scored": int(final is not None),
        }
        fact["group_key"] = group_key(fact)
        out.append(fact)
    return out


def _item_counts(s: Session, result_ids: list[int]) -> dict[int, list[tuple[str, int, int]]]:
    """result id → (item id, passed, failed) of its machine verdicts."""
    IR = m.ItemResult  # noqa: N806
    out: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    for i in range(0, len(result_ids), BATCH):
        chunk = result_ids[i : i + BATCH]
        q = select(IR.result_id, IR.item_id, IR.passed).where(IR.result_id.in_(chunk))
        for rid, item, passed in s.execute(q):
            out[rid].append((item, int(passed is True), int(passed is False)))
    return out


def _sums(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``dashboard_days`` rows: the facts summed per group."""
    groups: dict[str, dict[str, Any]] = {}
    for f in facts:
        g = groups.get(f["group_key"])
        if g is None:
            g = groups[f["group_key"]] = {k: f[k] for k in ("group_key", *DIMENSIONS)}
            g.update(dict.fromkeys(MEASURES, 0))
        for name in MEASURES:
            g[name] += f[name]
    return list(groups.values())


def _item_sums(s: Session, facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``dashboard_items`` rows: the machine verdicts of the facts' calls per group and item."""
    verdicts = _item_counts(s, [f["result_id"] for f in facts])
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for f in facts:
        for item, passed, failed in verdicts.get(f["result_id"], ()):
            r = rows.get((f["group_key"], item))
            if r is None:
                r = rows[(f["group_key"], item)] = {k: f[k] for k in ("group_key", *ITEM_DIMENSIONS)}  # fmt: skip
                r.update(item_id=item, passed=0, failed=0)
            r["passed"] += passed
            r["failed"] += failed
    return list(rows.values())


def _insert(s: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        s.execute(insert(table), rows[i : i + BATCH])


def rebuild_facts(s: Session) -> int:
    """Fill the three tables again from the base tables (in ``s``'s transaction); returns
    the number of scored calls."""
    for table in (m.DashboardItem, m.DashboardDay, m.CallFact):
        s.execute(delete(table))
    facts = compute_facts(s)
    _insert(s, m.CallFact, facts)
    _insert(s, m.DashboardDay, _sums(facts))
    _insert(s, m.DashboardItem, _item_sums(s, facts))
    return len(facts)


def refresh_facts(s: Session, call: m.Call) -> None:
    """Rewrite ``call``'s fact and the sums of the groups it left and joined, in ``s``'s
    transaction (call it after the change, before the commit)."""
    s.flush()
    old = s.get(m.CallFact, call.id)
    new = compute_facts(s, [call.id]) if call.current_result_id is not None else []
    if old is None and not new:
        return
    keys = {f["group_key"]: f for f in new}
    if old is not None:
        keys.setdefault(old.group_key, {k: getattr(old, k) for k in ("group_key", *DIMENSIONS)})  # fmt: skip
    if (
        old is not None
        and new
        and old.result_id == new[0]["result_id"]
        and all(getattr(old, k) == v for k, v in new[0].items())
    ):
        return  # nothing this call adds has changed
    _lock_groups(s, sorted(keys.items()))
    if old is not None:
        s.delete(old)
        s.flush()
    if new:
        s.execute(insert(m.CallFact), new)
    for key, dims in sorted(keys.items()):
        _resum(s, key, dims)


def _lock_groups(s: Session, groups: list[tuple[str, dict[str, Any]]]) -> None:
    """Create the groups' ``dashboard_days`` rows if missing and lock them (in key order)."""
    dialect = s.get_bind().dialect.name
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    D = m.DashboardDay  # noqa: N806
    for key, dims in groups:
        values = {k: dims.get(k) for k in DIMENSIONS} | dict.fromkeys(MEASURES, 0)
        s.execute(upsert(D).values(group_key=key, **values).on_conflict_do_nothing(index_elements=["group_key"]))  # fmt: skip
    s.execute(select(D.id).where(D.group_key.in_([k for k, _ in groups])).order_by(D.group_key).with_for_update())  # fmt: skip


def _resum(s: Session, key: str, dims: dict[str, Any]) -> None:
    """Sum the group ``key`` again from its call facts (its row is locked)."""
    F, D, IR, DI = m.CallFact, m.DashboardDay, m.ItemResult, m.DashboardItem  # noqa: N806
    sums = s.execute(select(*(func.coalesce(func.sum(getattr(F, n)), 0) for n in MEASURES)).where(F.group_key == key)).one()  # fmt: skip
    s.execute(D.__table__.update().where(D.group_key == key).values(dict(zip(MEASURES, sums, strict=True))))  # fmt: skip
    s.execute(delete(DI).where(DI.group_key == key))
    items = (
        select(
            IR.item_id,
            func.sum(case((IR.passed.is_(True), 1), else_=0)),
            func.sum(case((IR.passed.is_(False), 1), else_=0)),
        )
        .join(F, F.result_id == IR.result_id)
        .where(F.group_key == key)
        .group_by(IR.item_id)
    )
    base = {k: dims.get(k) for k in ITEM_DIMENSIONS}
    rows = [dict(base, group_key=key, item_id=i, passed=p, failed=f) for i, p, f in s.execute(items)]  # fmt: skip
    if rows:
        s.execute(insert(DI), rows)
