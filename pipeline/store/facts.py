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
from functools import cache
from typing import Any

from sqlalchemy import String, and_, bindparam, case, delete, func, insert, select, update
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


def _fact_queries(one: bool) -> tuple[Any, Any]:
    """(calls and their current results, item counts per result) of every scored call, or
    (``one``) of the call ``:pk`` alone, its result ``:rid``."""
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
    # one call: the latest verdicts of its own actions (read by their call_pk index)
    last = latest_verdicts(bindparam("rid"), call_pk=bindparam("pk")) if one else latest_verdicts()  # fmt: skip
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
    if one:
        q = q.where(C.id == bindparam("pk"))
        items = items.where(C.id == bindparam("pk"))
    return q, items


@cache
def _statements(dialect: str) -> dict[str, Any]:
    """The statements of :func:`refresh_facts`, built once (compiled once per dialect)."""
    F, D, IR, DI = m.CallFact, m.DashboardDay, m.ItemResult, m.DashboardItem  # noqa: N806
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = bindparam("key")
    one, items = _fact_queries(True)
    return {
        "facts": one,
        "items": items,
        "create": upsert(D)
        .values({n: bindparam(n) for n in ("group_key", *DIMENSIONS)} | dict.fromkeys(MEASURES, 0))
        .on_conflict_do_nothing(index_elements=["group_key"]),
        "lock": select(D.id)
        .where(D.group_key.in_(bindparam("keys", expanding=True)))
        .order_by(D.group_key)
        .with_for_update(),
        # the group's sums read again from its facts, in the UPDATE (its row is locked)
        "set": update(D.__table__)
        .where(D.group_key == key)
        .values(
            {
                n: select(func.coalesce(func.sum(getattr(F, n)), 0))
                .where(F.group_key == key)
                .scalar_subquery()
                for n in MEASURES
            }
        ),
        "clear": delete(DI).where(DI.group_key == key),
        "verdicts": insert(DI.__table__).from_select(
            ["group_key", *ITEM_DIMENSIONS, "item_id", "passed", "failed"],
            select(
                bindparam("key", type_=String),
                *(bindparam(f"d_{n}", type_=String) for n in ITEM_DIMENSIONS),
                IR.item_id,
                func.sum(case((IR.passed.is_(True), 1), else_=0)),
                func.sum(case((IR.passed.is_(False), 1), else_=0)),
            )
            .join(F, F.result_id == IR.result_id)
            .where(F.group_key == key)
            .group_by(IR.item_id),
        ),
        "insert": insert(F.__table__),
        "old": select(*F.__table__.columns).where(F.call_pk == bindparam("pk")),
        "drop": delete(F).where(F.call_pk == bindparam("pk")),
    }


def compute_facts(
    s: Session, call_pks: list[int] | None = None, current: int | None = None
) -> list[dict[str, Any]]:
    """The fact rows (``call_facts`` columns) of the scored calls ``call_pks`` (None: every
    scored call; one call: by :func:`refresh_facts`'s prepared statements, ``current``: its
    current result id when known), from the base tables."""
    if call_pks is not None and len(call_pks) == 1:
        pk = call_pks[0]
        rid = current if current is not None else s.scalar(select(m.Call.current_result_id).where(m.Call.id == pk))  # fmt: skip
        st = _statements(s.get_bind().dialect.name)
        core = s.connection()  # Core, not the ORM's per-statement work: the save path
        rows = core.execute(st["facts"], {"pk": pk}).all()
        counted = core.execute(st["items"], {"pk": pk, "rid": rid}).all()
    else:
        q, items = _fact_queries(False)
        if call_pks is not None:
            q = q.where(m.Call.id.in_(call_pks))
            items = items.where(m.Call.id.in_(call_pks))
        rows, counted = s.execute(q).all(), s.execute(items).all()
    counts = {rid: (n, changed, errors) for rid, n, changed, errors in counted}
    out = []
    for row in rows:
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
    st = _statements(s.get_bind().dialect.name)
    core = s.connection()  # Core statements, prepared once: the save path's cost
    old = core.execute(st["old"], {"pk": call.id}).mappings().one_or_none()
    rid = call.current_result_id
    new = compute_facts(s, [call.id], current=rid) if rid is not None else []
    if old is None and not new:
        return
    if old is not None and new and all(old[k] == v for k, v in new[0].items()):
        return  # nothing this call adds has changed
    keys = {f["group_key"]: f for f in new}
    if old is not None:
        keys.setdefault(old["group_key"], dict(old))
    groups = sorted(keys.items())
    # create the groups' rows if missing, then lock them (in key order): a concurrent
    # writer of the same group waits here and then sums the facts this one committed
    for key, dims in groups:
        core.execute(st["create"], {"group_key": key} | {n: dims.get(n) for n in DIMENSIONS})
    core.execute(st["lock"], {"keys": [k for k, _ in groups]})
    if old is not None:
        core.execute(st["drop"], {"pk": call.id})
    if new:
        core.execute(st["insert"], new)
    for key, dims in groups:
        core.execute(st["set"], {"key": key})
        core.execute(st["clear"], {"key": key})
        core.execute(st["verdicts"], {"key": key} | {f"d_{n}": dims.get(n) for n in ITEM_DIMENSIONS})  # fmt: skip
