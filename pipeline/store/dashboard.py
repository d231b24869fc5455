"""The dashboard's figures: KPIs of a period against the one before, trends by day or week,
pass rate per rubric item, and agent and team rankings, for the calls of a
:class:`~pipeline.store.scope.Scope` under the queue's filters.

Every figure is a sum over the materialised facts of :mod:`pipeline.store.facts` (per day
and dimension values, kept in the transaction of every save, re-score and review action),
filtered by :func:`fact_conditions`: the queue's filters (:func:`~pipeline.store.queries.
call_conditions`) on the facts' copies of the same columns, so each count is the total of
the queue that :func:`drill_down` links to. Scores are the machine's current results
(``100 * total / max`` per call); reviews add the reviewed share, the overturn rate
(overturned / reviewed items of reviewed calls, as the calibration page counts it) and open
disputes. ``callqa report`` reads the same figures (:meth:`DashboardQueries.breakdown`,
:meth:`DashboardQueries.item_rows`).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, field_validator
from sqlalchemy import func, select

from pipeline.store import models as m
from pipeline.store.queries import QueueFilter
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
GroupBy = Literal["agent_id", "team", "day"]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    overturned_calls: int = 0  # reviewed calls with an overturned item
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


class DashboardFilter(QueueFilter):
    """The queue's filters with dates that are days (``YYYY-MM-DD``): the facts hold the
    day of a call, and a day compares with a date as the call's ``started_at`` does."""

    @field_validator("date_from", "date_to")
    @classmethod
    def _a_day(cls, value: str | None) -> str | None:
        if value is not None and not _DAY.match(value):
            raise ValueError("expected a day, YYYY-MM-DD")
        return value


class GroupFigures(BaseModel):
    """Every figure of a group of calls (a period, an agent, a team, a day): what the
    dashboard shows and ``callqa report`` writes. Rates are fractions (None without calls)."""

    calls: int = 0
    mean_score_pct: float | None = None
    final_mean_score_pct: float | None = None  # reviewers' verdicts applied
    auto_fail: int = 0
    auto_fail_rate: float | None = None
    needs_review: int = 0
    needs_review_rate: float | None = None
    error_rate: float | None = None  # calls with a failed applicable item
    risk_low: int = 0
    risk_medium: int = 0
    risk_high: int = 0
    risk_none: int = 0
    mean_risk: float | None = None
    reviewed_calls: int = 0
    reviewed_items: int = 0
    overturned_items: int = 0
    overturn_rate: float | None = None
    disputed: int = 0


def dashboard_filter(params: dict[str, str]) -> QueueFilter:
    """The dashboard's filters of ``params`` (other queue fields are dropped)."""
    return DashboardFilter.model_validate({k: v for k, v in params.items() if k in DASHBOARD_FIELDS})  # fmt: skip


def fact_conditions(table: Any, scope: Scope, f: QueueFilter) -> list[Any]:
    """The conditions of ``scope`` and of ``f``'s dashboard filters on a facts table
    (``call_facts``, ``dashboard_days``, ``dashboard_items``): those of
    :func:`~pipeline.store.queries.call_conditions` on the facts' copies of the columns."""
    conds: list[Any] = []
    if (mine := scope.on(table)) is not None:
        conds.append(mine)
    for name in ("agent_id", "team", "queue", "language", "rubric_id", "rubric_version", "risk_level"):  # fmt: skip
        if value := getattr(f, name):
            conds.append(getattr(table, name) == value)
    if f.date_from:
        conds.append(table.day >= f.date_from)
    if f.date_to:
        conds.append(table.day <= f.date_to)
    return conds


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


class DashboardQueries:
    """The dashboard of a scope (mixed into :class:`~pipeline.store.review.ReviewStore`)."""

    store: Store

    def dashboard(self, scope: Scope, f: QueueFilter, grain: Grain = "day") -> Dashboard:
        """Every figure of the dashboard for ``scope`` under ``f`` (its dashboard fields);
        without dates, the :data:`DEFAULT_DAYS` up to the newest call in scope.

        Three reads of the materialised sums: by day over this period and the one before
        (KPIs of both, and the trend), by agent and team (rankings), by rubric item."""
        f = dashboard_filter(f.model_dump(exclude_none=True, include=set(DASHBOARD_FIELDS)))
        with self.store.session("cannot compute the dashboard") as s:
            if not f.date_from and not f.date_to:
                f = f.model_copy(update=self._default_period(s, scope))
            previous = _previous(f)
            span = f.model_copy(update={"date_from": previous.date_from}) if previous else f
            now, before, trend = Sums(), Sums(), {}
            for (day,), sums in self._sums(s, scope, span, m.DashboardDay.day):
                if previous and day is not None and day < (f.date_from or ""):
                    before.add(sums)
                    continue
                now.add(sums)
                if day is not None:
                    trend.setdefault(_bucket(day, grain, f), Sums()).add(sums)
            agents, teams = self._rankings(s, scope, f) if now.calls else ([], [])
            return Dashboard(
                filters=f,
                previous=previous,
                grain=grain,
                kpis=now.kpis(),
                previous_kpis=before.kpis() if previous else None,
                trend=[t.point(start, end) for (start, end), t in sorted(trend.items())],
                items=self._items(s, scope, f) if now.calls else [],
                agents=agents,
                teams=teams,
            )

    def breakdown(self, scope: Scope, f: QueueFilter, by: GroupBy | None = None) -> dict[str | None, GroupFigures]:  # fmt: skip
        """The figures of the calls of ``scope`` under ``f`` (no default period), in all
        (``by`` None: key None) or per agent id, team or day: ``callqa report``'s tables."""
        D = m.DashboardDay  # noqa: N806
        keys = (getattr(D, by),) if by else ()
        with self.store.session("cannot compute the report's figures") as s:
            return {(k[0] if k else None): sums.figures() for k, sums in self._sums(s, scope, f, *keys)}  # fmt: skip

    def item_rows(self, scope: Scope, f: QueueFilter) -> list[ItemRow]:
        """Pass rate per rubric item of the calls of ``scope`` under ``f``, weakest first."""
        with self.store.session("cannot compute the item pass rates") as s:
            return self._items(s, scope, f)

    # ------------------------------------------------------------------ parts

    @staticmethod
    def _sums(s: Any, scope: Scope, f: QueueFilter, *keys: Any) -> list[tuple[tuple[Any, ...], Sums]]:  # fmt: skip
        """The summed facts of ``scope`` under ``f``, grouped by ``keys`` (columns of
        ``dashboard_days``)."""
        D = m.DashboardDay  # noqa: N806
        q = select(*keys, *Sums.columns(D)).where(D.calls > 0, *fact_conditions(D, scope, f))
        if keys:
            q = q.group_by(*keys)
        out = []
        for row in s.execute(q):
            sums = Sums.of(row[len(keys) :])
            if sums.calls:
                out.append((tuple(row[: len(keys)]), sums))
        return out

    def _default_period(self, s: Any, scope: Scope) -> dict[str, str]:
        D = m.DashboardDay  # noqa: N806
        q = select(func.max(D.day)).where(D.calls > 0)
        if (mine := scope.on(D)) is not None:
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

    def _items(self, s: Any, scope: Scope, f: QueueFilter) -> list[ItemRow]:
        R, IR, DI = m.Result, m.ItemResult, m.DashboardItem  # noqa: N806
        q = (
            select(DI.rubric_id, DI.item_id, func.sum(DI.passed), func.sum(DI.failed))
            .where(*fact_conditions(DI, scope, f))
            .group_by(DI.rubric_id, DI.item_id)
        )
        rows = []
        for rubric, item, passed, failed in s.execute(q).all():
            passed, failed = passed or 0, failed or 0  # a row: a call has the item
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
        D = m.DashboardDay  # noqa: N806
        agents: dict[str | None, Sums] = {}
        teams: dict[str | None, Sums] = {}
        names: dict[str | None, str | None] = {}
        for (agent, team, name), sums in self._sums(s, scope, f, D.agent_id, D.team, D.agent_name):  # fmt: skip
            agents.setdefault(agent, Sums()).add(sums)
            teams.setdefault(team, Sums()).add(sums)
            names[agent] = max(filter(None, (names.get(agent), name)), default=None)
        return _ranked(agents, names), _ranked(teams, {})


class Sums:
    """Additive figures of a group of calls (the facts' :data:`~pipeline.store.models.
    FACT_MEASURES`), summed up into periods, weeks, agents and teams."""

    FIELDS = m.FACT_MEASURES

    def __init__(self) -> None:
        for name in self.FIELDS:
            setattr(self, name, 0)

    @classmethod
    def columns(cls, table: Any) -> list[Any]:
        return [func.coalesce(func.sum(getattr(table, name)), 0) for name in cls.FIELDS]

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

    def kpis(self) -> Kpis:
        n = self.calls
        return Kpis(
            calls=n,
            mean_score_pct=self.mean(),
            auto_fail=self.auto_fail,
            auto_fail_rate=_rate(self.auto_fail, n),
            high_risk=self.high_risk,
            high_risk_rate=_rate(self.high_risk, n),
            reviewed=self.reviewed,
            reviewed_share=_rate(self.reviewed, n),
            reviewed_items=self.reviewed_items,
            overturned_items=self.overturned_items,
            overturn_rate=_rate(self.overturned_items, self.reviewed_items),
            overturned_calls=self.overturned_calls,
            disputed=self.disputed,
        )

    def figures(self) -> GroupFigures:
        n = self.calls
        return GroupFigures(
            calls=n,
            mean_score_pct=self.mean(),
            final_mean_score_pct=float(self.final_score_sum) / self.final_scored
            if self.final_scored
            else None,  # fmt: skip
            auto_fail=self.auto_fail,
            auto_fail_rate=_rate(self.auto_fail, n),
            needs_review=self.needs_review,
            needs_review_rate=_rate(self.needs_review, n),
            error_rate=_rate(self.error_calls, n),
            risk_low=self.low_risk,
            risk_medium=self.medium_risk,
            risk_high=self.high_risk,
            risk_none=self.no_risk,
            mean_risk=float(self.risk_sum) / self.risk_scored if self.risk_scored else None,
            reviewed_calls=self.reviewed,
            reviewed_items=self.reviewed_items,
            overturned_items=self.overturned_items,
            overturn_rate=_rate(self.overturned_items, self.reviewed_items),
            disputed=self.disputed,
        )

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
