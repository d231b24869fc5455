"""Queue and report queries of the review app: the review queue (filters, order, paging,
neighbours), its filter menus, one call's metadata, failed calls, search across calls, and
calibration (machine vs reviewers per rubric item). Calls are reached through a
:class:`~pipeline.store.scope.Scope`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import and_, case, exists, func, or_, select

from pipeline.store import models as m
from pipeline.store.reviews import ReviewStatus
from pipeline.store.scope import Scope, visible_call
from pipeline.store.store import Store
from pipeline.store.verdicts import latest_verdicts, verdict_changed

SORTS = ("priority", "newest", "oldest", "score")
MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000  # deeper pages are refused (400), not turned into huge OFFSETs


class QueueFilter(BaseModel):
    """Queue filters (all optional) and order; dates compare with the call's ``started_at``."""

    date_from: str | None = None  # YYYY-MM-DD, inclusive
    date_to: str | None = None  # YYYY-MM-DD, inclusive
    team: str | None = None
    agent_id: str | None = None
    rubric_id: str | None = None  # of the current result
    rubric_version: str | None = None
    queue: str | None = None  # the manifest's routing queue
    language: str | None = None  # the call's language
    item_failed: str | None = None  # rubric item id the machine failed
    risk_level: Literal["low", "medium", "high"] | None = None
    auto_fail: bool | None = None  # the machine's auto-fail (red line)
    review_status: ReviewStatus | None = None
    overturned: bool | None = None  # reviewed, with an item whose final verdict differs
    sort: Literal["priority", "newest", "oldest", "score", "satisfaction"] = "priority"
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)


class QueueRow(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str | None
    team: str | None
    started_at: str | None
    duration: float | None
    rubric_id: str
    machine_total: float
    total: float  # final (machine with human verdicts applied)
    max: float
    auto_fail: bool
    needs_review: bool
    risk: float | None
    risk_level: str | None
    satisfaction: float | None = None  # predicted mean customer satisfaction, -2..2
    review_status: ReviewStatus


class QueuePage(BaseModel):
    rows: list[QueueRow]
    page: int
    per_page: int
    has_next: bool
    total: int | None = None  # calls matching the filters (all pages)


class FailedCall(BaseModel):
    call_id: str
    source: str | None
    error: str | None
    attempts: int
    last_attempt: str | None


class CallInfo(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str | None
    team: str | None
    started_at: str | None
    direction: str | None
    language: str | None
    duration: float | None
    source: str | None


class CalibrationRow(BaseModel):
    """Machine vs reviewers on one rubric item, over the current results of reviewed calls."""

    rubric_id: str
    item_id: str
    title: str | None
    scored: int  # items the machine scored (all calls)
    machine_fails: int  # ... of them failed by the machine
    reviewed: int  # items of reviewed calls
    reviewed_fails: int  # machine fails among them
    confirmed_fails: int  # ... that stayed failed
    overturned: int  # reviewed items whose final verdict differs from the machine's
    fail_precision: float | None  # confirmed_fails / reviewed_fails
    overturn_rate: float | None  # overturned / reviewed


def call_conditions(scope: Scope, f: QueueFilter) -> tuple[list[Any], list[Any], list[Any]]:
    """The SQL conditions of ``scope`` and the filters of ``f``: (on calls, on the current
    result, on the review state). The queue, its count and the dashboard's figures all use
    these, so a number on the dashboard is the count of the queue it links to. The
    ``item_failed`` condition, when set, is the last of the result's."""
    C, R, CR, IR = m.Call, m.Result, m.CallReview, m.ItemResult  # noqa: N806
    on_call: list[Any] = []
    on_result: list[Any] = []
    on_review: list[Any] = []
    if (mine := scope.calls()) is not None:
        on_call.append(mine)
    for value, column in (
        (f.agent_id, C.agent_id),
        (f.team, C.team),
        (f.queue, C.queue),
        (f.language, C.language),
    ):
        if value:
            on_call.append(column == value)
    if f.overturned is not None:  # as the dashboard counts it: the call's facts
        F = m.CallFact  # noqa: N806
        overturned = exists().where(F.call_pk == C.id, F.overturned_calls > 0)
        on_call.append(overturned if f.overturned else ~overturned)
    if f.date_from:
        on_call.append(C.started_at >= f.date_from)
    if f.date_to:
        on_call.append(C.started_at <= f.date_to + "T99")  # inclusive whole day, ISO text
    if f.rubric_id:
        on_result.append(R.rubric_id == f.rubric_id)
    if f.rubric_version:
        on_result.append(R.rubric_version == f.rubric_version)
    if f.risk_level:
        on_result.append(R.risk_level == f.risk_level)
    if f.auto_fail is not None:
        on_result.append(R.auto_fail.is_(f.auto_fail))
    if f.review_status == "auto":
        on_review.append(or_(CR.status.is_(None), CR.status == "auto"))
    elif f.review_status:
        on_review.append(CR.status == f.review_status)
    if f.item_failed:
        failed = exists().where(IR.result_id == R.id, IR.item_id == f.item_failed, IR.passed.is_(False))  # fmt: skip
        on_result.append(failed)
    return on_call, on_result, on_review


class QueueQueries:
    """The queue, its menus, call metadata, failed calls, search and calibration."""

    store: Store
    _search: Any

    def failed_job(self, call_id: str):
        """The :class:`~pipeline.schema.CallJob` to process a failed call again (or None)."""
        from pipeline.schema import CallJob

        with self.store.session(f"cannot read call {call_id!r}") as s:
            c = s.scalar(select(m.Call).where(m.Call.call_id == call_id, m.Call.status == "failed"))
            if c is None or not c.source:
                return None
            return m.copy_call(c, CallJob)

    # ------------------------------------------------------------------ search

    def search(self, scope: Scope, query: str, page: int = 1, per_page: int = 50):
        """Calls in ``scope`` whose transcript says ``query`` (see
        :mod:`pipeline.store.search`)."""
        from pipeline.store.search import SearchIndex

        if self._search is None:
            self._search = SearchIndex(self.store)
        return self._search.search(query, scope, page=page, per_page=per_page)

    # ------------------------------------------------------------------ failed calls

    def failed_calls(self, limit: int = 500) -> list[FailedCall]:
        """Calls whose last attempt failed, newest first, with the reason."""
        C, F = m.Call, m.Failure  # noqa: N806
        attempts = (
            select(F.call_pk, func.count().label("n"), func.max(F.created_at).label("last"))
            .group_by(F.call_pk).subquery()
        )  # fmt: skip
        q = (
            select(C, attempts.c.n, attempts.c.last)
            .outerjoin(attempts, attempts.c.call_pk == C.id)
            .where(C.status == "failed")
            .order_by(attempts.c.last.desc(), C.id.desc())
            .limit(limit)
        )
        with self.store.session("cannot read failed calls") as s:
            return [
                FailedCall(
                    call_id=c.call_id,
                    source=c.source,
                    error=c.error,
                    attempts=n or 0,
                    last_attempt=m.iso(last),
                )
                for c, n, last in s.execute(q)
            ]

    # ------------------------------------------------------------------ queue

    def queue(
        self,
        scope: Scope,
        f: QueueFilter | None = None,
        *,
        with_total: bool = True,
        offset: int | None = None,
    ) -> QueuePage:
        """One page of scored calls in ``scope``, by default what needs a human first
        (needs_review, auto-fail, complaint risk). Uses ``ix_results_queue``; ``with_total``:
        also count the matching calls (joining only what the filters need)."""
        f = f or QueueFilter()
        C, R, CR = m.Call, m.Result, m.CallReview  # noqa: N806
        on_call, on_result, on_review = call_conditions(scope, f)
        review_join = and_(CR.call_pk == C.id, CR.result_id == R.id)
        q = (
            select(C, R, CR)
            .join(R, C.current_result_id == R.id)
            .outerjoin(CR, review_join)
            .where(*on_call, *on_result, *on_review)
        )
        # the total joins only what its filters need (a scored call has its current result)
        counted = select(func.count()).select_from(C).where(C.current_result_id.is_not(None), *on_call)  # fmt: skip
        if f.item_failed:  # walk the failed items (ix_item_results_item_id_passed), not results
            IR = m.ItemResult  # noqa: N806
            counted = counted.join(IR, IR.result_id == C.current_result_id).where(
                IR.item_id == f.item_failed, IR.passed.is_(False)
            )
            on_result = on_result[:-1]
        if on_result or on_review:
            counted = counted.join(R, C.current_result_id == R.id).where(*on_result)
        if on_review:
            counted = counted.outerjoin(CR, review_join).where(*on_review)
        order = {
            "priority": (
                R.needs_review.desc(),
                R.auto_fail.desc(),
                R.risk_score.desc(),
                R.id.desc(),
            ),
            "newest": (C.started_at.desc(), C.id.desc()),
            "oldest": (C.started_at.asc(), C.id.asc()),
            "score": (R.total.asc(), R.id.asc()),
            # least satisfied first; results without a prediction last
            "satisfaction": (R.risk_satisfaction.asc().nulls_last(), R.id.asc()),
        }[f.sort]
        start = offset if offset is not None else (f.page - 1) * f.per_page
        q = q.order_by(*order).limit(f.per_page + 1).offset(start)
        with self.store.session("cannot read the review queue") as s:
            found = s.execute(q).all()
            total = s.scalar(counted) if with_total else None
        rows = [
            QueueRow(
                call_id=c.call_id,
                agent_id=c.agent_id,
                agent_name=c.agent_name,
                team=c.team,
                started_at=c.started_at,
                duration=c.duration,
                rubric_id=r.rubric_id,
                machine_total=r.total,
                total=cr.final_total if cr else r.total,
                max=cr.final_max if cr else r.max,
                auto_fail=cr.final_auto_fail if cr else r.auto_fail,
                needs_review=r.needs_review,
                risk=r.risk_score,
                risk_level=r.risk_level,
                satisfaction=r.risk_satisfaction,
                review_status=cr.status if cr else "auto",
            )
            for c, r, cr in found[: f.per_page]
        ]
        return QueuePage(
            rows=rows,
            page=f.page,
            per_page=f.per_page,
            has_next=len(found) > f.per_page,
            total=total,
        )

    def neighbours(
        self, scope: Scope, f: QueueFilter, call_id: str, position: int | None
    ) -> tuple[str | None, str | None]:
        """(previous, next) call ids around ``call_id`` in the queue order of ``f``;
        ``position`` (0-based, from the queue link) narrows the search to a window."""
        around = max(0, (position or 0) - 25)
        window = f.model_copy(update={"page": 1, "per_page": MAX_PAGE_SIZE})
        for offset in dict.fromkeys((around, 0)):
            ids = self._queue_ids(scope, window, offset, 51 if offset else MAX_PAGE_SIZE)
            if call_id in ids:
                at = ids.index(call_id)
                prev_id = ids[at - 1] if at > 0 else None
                next_id = ids[at + 1] if at + 1 < len(ids) else None
                return prev_id, next_id
        first = self._queue_ids(scope, window, 0, 1)
        return None, (first[0] if first and first[0] != call_id else None)

    def _queue_ids(self, scope: Scope, f: QueueFilter, offset: int, limit: int) -> list[str]:
        page = f.model_copy(update={"page": 1, "per_page": min(limit, MAX_PAGE_SIZE)})
        return [r.call_id for r in self.queue(scope, page, with_total=False, offset=offset).rows]

    def facets(self, scope: Scope) -> dict[str, list[str]]:
        """Values for the queue's filter menus (teams, agents, item ids) of the scored calls,
        read from the dashboard's sums (:mod:`pipeline.store.facts`: a few rows per day,
        not one per call or item)."""
        D, DI = m.DashboardDay, m.DashboardItem  # noqa: N806
        with self.store.session("cannot read the review queue") as s:
            teams = s.scalars(select(D.team).where(D.calls > 0, D.team.is_not(None)).distinct())
            agents_q = select(D.agent_id).where(D.calls > 0, D.agent_id.is_not(None)).distinct()
            if (mine := scope.on(D)) is not None:
                agents_q = agents_q.where(mine)
            items = s.scalars(select(DI.item_id).distinct())
            shown_teams = sorted(teams) if scope.all_calls else sorted(scope.teams)
            return {
                "teams": shown_teams,
                "agents": sorted(s.scalars(agents_q)),
                "item_ids": sorted(items),
            }

    def call_info(self, scope: Scope, call_id: str) -> CallInfo:
        """The call's metadata (:class:`NotFound` when it is outside ``scope``)."""
        with self.store.session(f"cannot read call {call_id!r}") as s:
            return m.copy_call(visible_call(s, scope, call_id), CallInfo)

    # ------------------------------------------------------------------ calibration

    def calibration(self) -> list[CalibrationRow]:
        """Agreement of machine and reviewers per rubric item (one SQL pass)."""
        C, R, IR, CR = m.Call, m.Result, m.ItemResult, m.CallReview  # noqa: N806
        last = latest_verdicts()
        reviewed = CR.status == "reviewed"
        final = func.coalesce(last.c.after, IR.passed)
        differs = verdict_changed(last)

        def count_if(cond) -> Any:
            return func.sum(case((cond, 1), else_=0))

        q = (
            select(
                R.rubric_id,
                IR.item_id,
                func.max(IR.title),
                func.count(),
                count_if(IR.passed.is_(False)),
                count_if(reviewed),
                count_if(and_(reviewed, IR.passed.is_(False))),
                count_if(and_(reviewed, IR.passed.is_(False), final.is_(False))),
                count_if(and_(reviewed, differs)),
            )
            .select_from(C)
            .join(R, C.current_result_id == R.id)
            .join(IR, IR.result_id == R.id)
            .outerjoin(CR, and_(CR.call_pk == C.id, CR.result_id == R.id))
            .outerjoin(last, last.c.item_result_id == IR.id)
            .group_by(R.rubric_id, IR.item_id)
            .order_by(R.rubric_id, IR.item_id)
        )
        with self.store.session("cannot compute calibration") as s:
            out = []
            for rubric, item, title, n, fails, rev, rev_fails, confirmed, over in s.execute(q):
                out.append(
                    CalibrationRow(
                        rubric_id=rubric,
                        item_id=item,
                        title=title,
                        scored=n,
                        machine_fails=fails or 0,
                        reviewed=rev or 0,
                        reviewed_fails=rev_fails or 0,
                        confirmed_fails=confirmed or 0,
                        overturned=over or 0,
                        fail_precision=round(confirmed / rev_fails, 4) if rev_fails else None,
                        overturn_rate=round(over / rev, 4) if rev else None,
                    )
                )
            return out
