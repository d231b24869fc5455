"""The dashboard's figures: KPIs of a period against the one before, trends by day or week,
pass rate per rubric item, and agent and team rankings, for the calls of a
:class:`~pipeline.store.scope.Scope` under the queue's filters.

Every figure is counted with :func:`~pipeline.store.queries.call_conditions`, the queue's
own conditions, so each count is the total of the queue that :func:`drill_down` links to.
Scores are the machine's current results (``100 * total / max`` per call, as ``callqa
report`` computes ``mean_score_pct``); reviews add the reviewed share, the overturn rate
(overturned / reviewed items of reviewed calls, as the calibration page counts it) and open
disputes.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import and_, case, func, select

from pipeline.store import models as m
from pipeline.store.queries import QueueFilter, call_conditions, verdict_changed
from pipeline.store.reviews import latest_verdicts
from pipeline.store.scope import Scope
from pipeline.store.store import Store

# The queue filters the dashboard offers (kept in its URL and passed on to the queue).
DASHBOARD_FIELDS = (
    "date_from",
    "date_to",
    "team",
    "agent_id",
    "rubric_id",
    "rubric_version",
    "queue",
    "language",
    "risk_level",
)
DEFAULT_DAYS = 28  # without dates: the four weeks up to the newest call in scope
MAX_RANKED = 50  # rows of the agent and team rankings (weakest first)
Grain = Literal["day", "week"]


class Kpis(BaseModel):
    """The tiles' figures for one period. Rates are fractions (None without calls)."""

    calls: int = 0
    mean_score_pct: float | None = None
    auto_fail: int = 0
    auto_fail_rate: float | None = None
    high_risk: int = 0
    high_risk_rate: float | None = None
    reviewed: int = 0  # calls reviewed by a human
    reviewed_share: float | None = None
    reviewed_items: int = 0
    overturned_items: int = 0
    overturn_rate: float | None = None
    disputed: int = 0  # calls with an open dispute


class TrendPoint(BaseModel):
    start: str  # first day of the bucket (within the filter's dates)
    end: str  # last day
    calls: int
    mean_score_pct: float | None
    high_risk: int
    high_risk_rate: float | None
    auto_fail: int


class ItemRow(BaseModel):
    rubric_id: str
    item_id: str
    title: str | None
    critical: bool
    passed: int
    failed: int  # calls whose current result fails the item (the queue's item_failed)
    pass_rate: float | None  # passed / (passed + failed)


class GroupRow(BaseModel):
    key: str | None  # agent_id or team (None: calls without one)
    name: str | None  # the agent's name
    calls: int
    mean_score_pct: float | None
    auto_fail: int
    high_risk: int


class Dashboard(BaseModel):
    filters: QueueFilter
    previous: QueueFilter | None  # the period before, as long (None without both dates)
    grain: Grain
    kpis: Kpis
    previous_kpis: Kpis | None
    trend: list[TrendPoint]
    items: list[ItemRow]
    agents: list[GroupRow]
    teams: list[GroupRow]


def dashboard_filter(params: dict[str, str]) -> QueueFilter:
    """The dashboard's filters of ``params`` (other queue fields are dropped)."""
    return QueueFilter.model_validate({k: v for k, v in params.items() if k in DASHBOARD_FIELDS})


def drill_down(f: QueueFilter, **extra: Any) -> dict[str, str]:
    """The queue's query parameters for the calls behind a figure: the dashboard's filters
    of ``f`` with ``extra`` (``auto_fail=True``, ``item_failed=...``) on top."""
    params: dict[str, Any] = {k: getattr(f, k) for k in DASHBOARD_FIELDS}
    params.update(extra)
    out = {}
    for k, v in params.items():
        if v is None or v == "":
            continue
        out[k] = ("1" if v else "0") if isinstance(v, bool) else str(v)
    return out


def _rate(n: int, total: int) -> float | None:
    return n / total if total else None


def _count_if(cond: Any) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


class DashboardQueries:
    """The dashboard of a scope (mixed into :class:`~pipeline.store.review.ReviewStore`)."""

    store: Store

    def dashboard(self, scope: Scope, f: QueueFilter, grain: Grain = "day") -> Dashboard:
        """Every figure of the dashboard for ``scope`` under ``f`` (its dashboard fields);
        without dates, the :data:`DEFAULT_DAYS` up to the newest call in scope.

        Three passes over the calls: by day over this period and the one before (KPIs of
        both, and the trend), by agent and team (rankings), by rubric item."""
        f = dashboard_filter(f.model_dump(exclude_none=True, include=set(DASHBOARD_FIELDS)))
        with self.store.session("cannot compute the dashboard") as s:
            if not f.date_from and not f.date_to:
                f = f.model_copy(update=self._default_period(s, scope))
            previous = _previous(f)
            span = f.model_copy(update={"date_from": previous.date_from}) if previous else f
            now, before, trend = Sums(), Sums(), {}
            for day, sums in self._by_day(s, scope, span):
                if previous and day is not None and day < (f.date_from or ""):
                    before.add(sums)
                    continue
                now.add(sums)
                if day is not None:
                    trend.setdefault(_bucket(day, grain, f), Sums()).add(sums)
            kpis = self._kpis(s, scope, f, now)
            agents, teams = self._rankings(s, scope, f) if now.calls else ([], [])
            return Dashboard(
                filters=f,
                previous=previous,
                grain=grain,
                kpis=kpis,
                previous_kpis=self._kpis(s, scope, previous, before) if previous else None,
                trend=[t.point(start, end) for (start, end), t in sorted(trend.items())],
                items=self._items(s, scope, f) if now.calls else [],
                agents=agents,
                teams=teams,
            )

    # ------------------------------------------------------------------ parts

    @staticmethod
    def _scored(scope: Scope, f: QueueFilter, *columns: Any) -> Any:
        """SELECT ``columns`` over the scored calls of ``scope`` under ``f`` (call, current
        result, review state)."""
        C, R, CR = m.Call, m.Result, m.CallReview  # noqa: N806
        on_call, on_result, on_review = call_conditions(scope, f)
        return (
            select(*columns)
            .select_from(C)
            .join(R, C.current_result_id == R.id)
            .outerjoin(CR, and_(CR.call_pk == C.id, CR.result_id == R.id))
            .where(*on_call, *on_result, *on_review)
        )

    def _default_period(self, s: Any, scope: Scope) -> dict[str, str]:
        q = select(func.max(m.Call.started_at)).where(m.Call.current_result_id.is_not(None))
        if (mine := scope.calls()) is not None:
            q = q.where(mine)
        newest = s.scalar(q)
        try:
            last = date.fromisoformat(newest[:10]) if newest else None
        except ValueError:
            last = None
        if last is None:
            return {}
        first = last - timedelta(days=DEFAULT_DAYS - 1)
        return {"date_from": first.isoformat(), "date_to": last.isoformat()}

    def _by_day(self, s: Any, scope: Scope, f: QueueFilter) -> list[tuple[str | None, Sums]]:
        day = func.substr(m.Call.started_at, 1, 10)
        q = self._scored(scope, f, day, *Sums.columns()).group_by(day)
        return [(row[0], Sums.of(row[1:])) for row in s.execute(q)]

    def _kpis(self, s: Any, scope: Scope, f: QueueFilter, sums: Sums) -> Kpis:
        reviewed_items = overturned = 0
        if sums.reviewed:
            R, IR, CR = m.Result, m.ItemResult, m.CallReview  # noqa: N806
            last = latest_verdicts()
            q = (
                self._scored(scope, f, func.count(), _count_if(verdict_changed(last)))
                .join(IR, IR.result_id == R.id)
                .outerjoin(last, last.c.item_result_id == IR.id)
                .where(CR.status == "reviewed")
            )
            reviewed_items, overturned = s.execute(q).one()
        n = sums.calls
        return Kpis(
            calls=n,
            mean_score_pct=sums.mean(),
            auto_fail=sums.auto_fail,
            auto_fail_rate=_rate(sums.auto_fail, n),
            high_risk=sums.high_risk,
            high_risk_rate=_rate(sums.high_risk, n),
            reviewed=sums.reviewed,
            reviewed_share=_rate(sums.reviewed, n),
            reviewed_items=reviewed_items,
            overturned_items=overturned,
            overturn_rate=_rate(overturned, reviewed_items),
            disputed=sums.disputed,
        )

    def _items(self, s: Any, scope: Scope, f: QueueFilter) -> list[ItemRow]:
        R, IR = m.Result, m.ItemResult  # noqa: N806
        q = (
            self._scored(
                scope,
                f,
                R.rubric_id,
                IR.item_id,
                _count_if(IR.passed.is_(True)),
                _count_if(IR.passed.is_(False)),
            )
            .join(IR, IR.result_id == R.id)
            .group_by(R.rubric_id, IR.item_id)
        )
        rows = []
        for rubric, item, passed, failed in s.execute(q).all():
            # title and red-line flag of one stored verdict of the item (few items: indexed)
            one = select(IR.title, IR.critical).join(R, IR.result_id == R.id).where(IR.item_id == item, R.rubric_id == rubric).limit(1)  # fmt: skip
            title, critical = s.execute(one).one()
            rows.append(
                ItemRow(
                    rubric_id=rubric,
                    item_id=item,
                    title=title,
                    critical=bool(critical),
                    passed=passed,
                    failed=failed,
                    pass_rate=_rate(passed, passed + failed),
                )
            )
        return sorted(rows, key=lambda r: (r.pass_rate is None, r.pass_rate or 0.0, r.rubric_id, r.item_id))  # fmt: skip

    def _rankings(
        self, s: Any, scope: Scope, f: QueueFilter
    ) -> tuple[list[GroupRow], list[GroupRow]]:
        """(agents, teams), weakest mean score first, from one pass by agent and team."""
        C = m.Call  # noqa: N806
        q = self._scored(scope, f, C.agent_id, C.team, func.max(C.agent_name), *Sums.columns())
        agents: dict[str | None, Sums] = {}
        teams: dict[str | None, Sums] = {}
        names: dict[str | None, str | None] = {}
        for agent, team, name, *figures in s.execute(q.group_by(C.agent_id, C.team)):
            sums = Sums.of(figures)
            agents.setdefault(agent, Sums()).add(sums)
            teams.setdefault(team, Sums()).add(sums)
            names[agent] = max(filter(None, (names.get(agent), name)), default=None)
        return _ranked(agents, names), _ranked(teams, {})


class Sums:
    """Additive figures of a group of calls (a day, an agent in a team), summed up into
    periods, weeks, agents and teams."""

    FIELDS = ("calls", "score_sum", "scored", "auto_fail", "high_risk", "reviewed", "disputed")

    def __init__(self) -> None:
        for name in self.FIELDS:
            setattr(self, name, 0)

    @staticmethod
    def columns() -> list[Any]:
        R, CR = m.Result, m.CallReview  # noqa: N806
        pct = case((R.max > 0, 100.0 * R.total / R.max))
        return [
            func.count(),
            func.coalesce(func.sum(pct), 0.0),
            func.count(pct),
            _count_if(R.auto_fail.is_(True)),
            _count_if(R.risk_level == "high"),
            _count_if(CR.status == "reviewed"),
            _count_if(CR.status == "disputed"),
        ]

    @classmethod
    def of(cls, row: Any) -> Sums:
        sums = cls()
        for name, value in zip(cls.FIELDS, row, strict=True):
            setattr(sums, name, value or 0)
        return sums

    def add(self, other: Sums) -> None:
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def mean(self) -> float | None:
        return float(self.score_sum) / self.scored if self.scored else None

    def point(self, start: str, end: str) -> TrendPoint:
        return TrendPoint(
            start=start,
            end=end,
            calls=self.calls,
            mean_score_pct=self.mean(),
            high_risk=self.high_risk,
            high_risk_rate=_rate(self.high_risk, self.calls),
            auto_fail=self.auto_fail,
        )


def _ranked(groups: dict[str | None, Sums], names: dict[str | None, str | None]) -> list[GroupRow]:  # fmt: skip
    rows = [
        GroupRow(
            key=key,
            name=names.get(key),
            calls=g.calls,
            mean_score_pct=g.mean(),
            auto_fail=g.auto_fail,
            high_risk=g.high_risk,
        )
        for key, g in groups.items()
    ]
    rows.sort(key=lambda r: (r.mean_score_pct is None, r.mean_score_pct or 0.0, r.key or ""))
    return rows[:MAX_RANKED]


def _previous(f: QueueFilter) -> QueueFilter | None:
    """The same filters over the period of equal length just before ``f``'s dates."""
    if not (f.date_from and f.date_to):
        return None
    try:
        first, last = date.fromisoformat(f.date_from), date.fromisoformat(f.date_to)
    except ValueError:
        return None
    days = (last - first).days + 1
    if days < 1:
        return None
    update = {"date_from": (first - timedelta(days=days)).isoformat(), "date_to": (first - timedelta(days=1)).isoformat()}  # fmt: skip
    return f.model_copy(update=update)


def _bucket(day: str, grain: Grain, f: QueueFilter) -> tuple[str, str]:
    """The (first, last) day of ``day``'s bucket, clipped to ``f``'s dates so that the
    bucket's queue holds exactly its calls."""
    if grain == "day":
        return day, day
    try:
        d = date.fromisoformat(day)
    except ValueError:
        return day, day
    start = (d - timedelta(days=d.weekday())).isoformat()
    end = (d + timedelta(days=6 - d.weekday())).isoformat()
    if f.date_from and start < f.date_from:
        start = f.date_from
    if f.date_to and end > f.date_to:
        end = f.date_to
    return start, end
