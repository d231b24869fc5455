"""The store as tables for reports and coaching packs: one row per call, one row per item.

Only current machine results count. When the review tables exist (``pipeline.store.review``),
each item also carries its final verdict (the latest override, ruling or confirm on it) and
each call its final score, exactly as the review app computes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import and_, inspect, select

from pipeline.store import Store
from pipeline.store import models as m
from pipeline.store.verdicts import latest_verdicts

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

CALL_FRAME_COLUMNS = (
    "call_id",
    "agent_id",
    "agent_name",
    "team",
    "started_at",
    "day",
    "source",
    "duration",
    "result_id",
    "rubric_id",
    "total",
    "max",
    "score_pct",
    "auto_fail",
    "needs_review",
    "risk",
    "risk_level",
    "review_status",
    "final_total",
    "final_max",
    "final_score_pct",
    "final_auto_fail",
)

ITEM_FRAME_COLUMNS = (
    "call_id",
    "agent_id",
    "agent_name",
    "team",
    "started_at",
    "day",
    "result_id",
    "rubric_id",
    "item_result_id",
    "position",
    "item_id",
    "section",
    "title",
    "critical",
    "applicable",
    "needs_review",
    "points",
    "max_points",
    "machine_passed",
    "final_passed",
    "human_verdict",
    "reviewed",
    "overturned",
    "reason",
    "evidence",
)


class ReportError(ValueError):
    """A bad filter or selection; the message is one line the user can act on."""


def parse_day(value: str | date | None, option: str) -> date | None:
    """``YYYY-MM-DD`` (inclusive day bound) → date; a clear error naming ``option`` otherwise."""
    if value is None or isinstance(value, date):
        return value
    text = str(value).strip()
    if not _DAY.match(text):
        raise ReportError(f"{option}: {value!r} is not a date (expected YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ReportError(f"{option}: {value!r} is not a date ({exc})") from None


@dataclass(frozen=True)
class Period:
    """Inclusive day range on the call's ``started_at`` (as the CTI wrote it); open ends."""

    since: date | None = None
    until: date | None = None

    @classmethod
    def parse(cls, since: str | date | None, until: str | date | None) -> Period:
        period = cls(parse_day(since, "--since"), parse_day(until, "--until"))
        if period.since and period.until and period.since > period.until:
            raise ReportError(f"--since {period.since} is after --until {period.until}")
        return period

    def describe(self) -> str:
        if not self.since and not self.until:
            return "all days"
        return f"{self.since or '…'} to {self.until or '…'}"

    def where(self, column: Any) -> list[Any]:
        """SQL conditions on an ISO text column (a whole day is ``>= D`` and ``< D+1``)."""
        conds = []
        if self.since:
            conds.append(column >= self.since.isoformat())
        if self.until:
            conds.append(column < (self.until + timedelta(days=1)).isoformat())
        return conds


def has_review_tables(store: Store) -> bool:
    """True when the review workflow's tables exist in this store."""
    if not hasattr(m, "ReviewAction") or not hasattr(m, "CallReview"):
        return False
    names = set(inspect(store.engine).get_table_names())
    return {"review_actions", "call_reviews"} <= names


def _pct(total: pd.Series, maximum: pd.Series) -> pd.Series:
    total = pd.to_numeric(total, errors="coerce").astype(float)
    maximum = pd.to_numeric(maximum, errors="coerce").astype(float)
    return (100.0 * total / maximum).where(maximum > 0)


def _call_filters(period: Period, agent: str | None, team: str | None) -> list[Any]:
    conds = period.where(m.Call.started_at)
    if agent:
        conds.append((m.Call.agent_id == agent) | (m.Call.agent_name == agent))
    if team:
        conds.append(m.Call.team == team)
    return conds


def calls_frame(
    store: Store, period: Period = Period(), agent: str | None = None, team: str | None = None
) -> pd.DataFrame:
    """One row per scored call (its current result) in the period: :data:`CALL_FRAME_COLUMNS`."""
    C, R = m.Call, m.Result  # noqa: N806
    review = has_review_tables(store)
    cols = [
        C.call_id,
        C.agent_id,
        C.agent_name,
        C.team,
        C.started_at,
        C.source,
        C.duration,
        R.id.label("result_id"),
        R.rubric_id,
        R.total,
        R.max,
        R.auto_fail,
        R.needs_review,
        R.risk_score.label("risk"),
        R.risk_level,
    ]
    if review:
        CR = m.CallReview  # noqa: N806
        cols += [
            CR.status.label("review_status"),
            CR.final_total,
            CR.final_max,
            CR.final_auto_fail,
        ]
    q = select(*cols).join(R, C.current_result_id == R.id)
    if review:
        q = q.outerjoin(CR, and_(CR.call_pk == C.id, CR.result_id == R.id))
    q = q.where(*_call_filters(period, agent, team)).order_by(C.call_id)
    with store.session("cannot read calls for the report") as s:
        rows = s.execute(q).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows], columns=[c.key for c in cols])
    if not review:
        df["review_status"] = None
        df["final_total"] = None
        df["final_max"] = None
        df["final_auto_fail"] = None
    df["review_status"] = df["review_status"].fillna("auto")
    # Without a human action the final score is the machine's.
    df["final_total"] = df["final_total"].where(df["final_total"].notna(), df["total"])
    df["final_max"] = df["final_max"].where(df["final_max"].notna(), df["max"])
    df["final_auto_fail"] = (
        df["final_auto_fail"].where(df["final_auto_fail"].notna(), df["auto_fail"]).astype(bool)
    )
    df["auto_fail"] = df["auto_fail"].astype(bool)
    df["needs_review"] = df["needs_review"].astype(bool)
    df["score_pct"] = _pct(df["total"], df["max"])
    df["final_score_pct"] = _pct(df["final_total"], df["final_max"])
    df["day"] = df["started_at"].str.slice(0, 10)
    return df[list(CALL_FRAME_COLUMNS)]


def items_frame(
    store: Store,
    period: Period = Period(),
    agent: str | None = None,
    team: str | None = None,
    item_ids: list[str] | None = None,
    final_passed: bool | None = None,
) -> pd.DataFrame:
    """One row per item of the current results in the period: :data:`ITEM_FRAME_COLUMNS`.

    ``final_passed`` keeps only items whose final verdict is that value (filtered in pandas
    because the final verdict may come from a human action).
    """
    C, R, IR = m.Call, m.Result, m.ItemResult  # noqa: N806
    review = has_review_tables(store)
    cols = [
        C.call_id,
        C.agent_id,
        C.agent_name,
        C.team,
        C.started_at,
        R.id.label("result_id"),
        R.rubric_id,
        IR.id.label("item_result_id"),
        IR.position,
        IR.item_id,
        IR.section,
        IR.title,
        IR.critical,
        IR.applicable,
        IR.needs_review,
        IR.points,
        IR.max_points,
        IR.passed.label("machine_passed"),
        IR.reason,
        IR.evidence,
    ]
    q_from = select().select_from(C).join(R, C.current_result_id == R.id)
    q_from = q_from.join(IR, IR.result_id == R.id)
    if review:
        CR = m.CallReview  # noqa: N806
        last = latest_verdicts()
        cols += [last.c.action_id, last.c.after.label("human_after"), CR.status]
        q_from = q_from.outerjoin(last, last.c.item_result_id == IR.id).outerjoin(
            CR, and_(CR.call_pk == C.id, CR.result_id == R.id)
        )
    conds = _call_filters(period, agent, team)
    if item_ids:
        conds.append(IR.item_id.in_(item_ids))
    q = q_from.add_columns(*cols).where(*conds).order_by(C.call_id, IR.position)
    with store.session("cannot read item results for the report") as s:
        rows = [dict(r) for r in s.execute(q).mappings().all()]
    names = [c.key if hasattr(c, "key") else c.name for c in cols]
    df = pd.DataFrame(rows, columns=names)
    if review:
        df["human_verdict"] = df["action_id"].notna()
        human_after = df["human_after"].astype(object)
        final = df["machine_passed"].astype(object).where(~df["human_verdict"], human_after)
        df["reviewed"] = df["status"].eq("reviewed")
    else:
        df["human_verdict"] = False
        final = df["machine_passed"].astype(object)
        df["reviewed"] = False
    df["final_passed"] = final.map(_tristate)
    df["machine_passed"] = df["machine_passed"].astype(object).map(_tristate)
    df["overturned"] = df["reviewed"] & (
        df["final_passed"].astype(str) != df["machine_passed"].astype(str)
    )
    for col in ("critical", "applicable", "needs_review"):
        df[col] = df[col].astype(bool)
    df["day"] = df["started_at"].str.slice(0, 10)
    if final_passed is not None:
        df = df.loc[df["final_passed"].map(lambda v: v is final_passed).astype(bool)]
    return df[list(ITEM_FRAME_COLUMNS)].reset_index(drop=True)


def _tristate(value: Any) -> bool | None:
    """True / False / None from a nullable boolean column (NaN and None are undecided)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return bool(value)


def known_values(store: Store) -> dict[str, list[str]]:
    """Item ids, agent ids/names and teams present in the store (to reject unknown filters)."""
    with store.session("cannot read the store") as s:
        items = s.scalars(select(m.ItemResult.item_id).distinct()).all()
        agents = s.execute(select(m.Call.agent_id, m.Call.agent_name).distinct()).all()
        teams = s.scalars(select(m.Call.team).where(m.Call.team.is_not(None)).distinct()).all()
    return {
        "items": sorted(items),
        "agents": sorted({a for a, _ in agents if a}),
        "agent_names": sorted({n for _, n in agents if n}),
        "teams": sorted(teams),
    }


def check_known(store: Store, item: str | None, agent: str | None, team: str | None) -> None:
    """Raise :class:`ReportError` for an item id, agent or team the store has never seen."""
    if not (item or agent or team):
        return
    known = known_values(store)

    def listing(values: list[str]) -> str:
        shown = ", ".join(values[:12]) + (", …" if len(values) > 12 else "")
        return shown or "none stored"

    if item and item not in known["items"]:
        raise ReportError(f"--item: unknown item id {item!r}; known: {listing(known['items'])}")
    if agent and agent not in known["agents"] and agent not in known["agent_names"]:
        raise ReportError(f"--agent: unknown agent {agent!r}; known: {listing(known['agents'])}")
    if team and team not in known["teams"]:
        raise ReportError(f"--team: unknown team {team!r}; known: {listing(known['teams'])}")


@dataclass
class Report:
    """The KPI tables of one period (pandas frames) and the overall figures."""

    period: Period
    review_data: bool
    summary: dict[str, Any]
    agents: pd.DataFrame
    teams: pd.DataFrame
    items: pd.DataFrame
    daily: pd.DataFrame
    calls: pd.DataFrame
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def empty(self) -> bool:
        return self.calls.empty
