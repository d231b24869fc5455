"""Review actions and disputes: the final score of a call (the machine result with the human
verdicts applied), overrides, confirmations, disputes and rulings, and their audit log.

The machine result is never changed. Every human action is an append-only
``review_actions`` row (who, when, item verdict before and after, comment); the final score
is the machine result with the latest human verdict on each item (:func:`latest_verdicts`,
the one query for it) applied, and ``call_reviews`` caches it (with the call's review
status) for the queue. Calls are reached through a :class:`~pipeline.store.scope.Scope`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store import models as m
from pipeline.store.facts import refresh_facts
from pipeline.store.outbox import Outbox
from pipeline.store.scope import NotFound, ReviewError, Scope, bounded_text, visible_call
from pipeline.store.session import StoreBase
from pipeline.store.verdicts import HUMAN_VERDICTS as HUMAN_VERDICTS  # re-exported
from pipeline.store.verdicts import latest_verdicts

ReviewStatus = Literal["auto", "reviewed", "disputed"]


class FinalItem(BaseModel):
    item_result_id: int
    id: str
    section: str
    title: str | None
    critical: bool
    applicable: bool
    max_points: float
    machine_passed: bool | None
    passed: bool | None  # final verdict
    points: float  # final points earned
    overridden: bool
    needs_review: bool
    reason: str | None
    evidence: list[dict[str, Any]]


class FinalScore(BaseModel):
    """The machine result with the human verdicts applied."""

    call_id: str
    result_id: int
    rubric_id: str
    rubric_version: str
    machine_total: float
    machine_auto_fail: bool
    total: float
    max: float
    auto_fail: bool
    review_status: ReviewStatus
    items: list[FinalItem]


class AuditRow(BaseModel):
    id: int
    kind: str
    item_id: str
    item_result_id: int
    user: str
    role: str
    before: bool | None
    after: bool | None
    comment: str | None
    dispute_id: int | None
    created_at: str
    result_id: int | None = None  # the result version the action was on
    carried_from: int | None = None  # the action it repeats on a new result version


class DisputeRow(BaseModel):
    id: int
    item_id: str
    item_result_id: int
    raised_by: str
    reason: str
    status: Literal["open", "upheld", "rejected"]
    ruled_by: str | None
    ruling_comment: str | None
    created_at: str
    ruled_at: str | None


def _item_value(item: m.ItemResult) -> float:
    return item.max_points if item.max_points is not None else item.points


def _flip(verdict: bool | None) -> bool:
    """A ruling that upholds a dispute: fail ↔ pass; an undecided item becomes a pass."""
    return not verdict if verdict is not None else True


def human_verdicts(s: Session, result_id: int) -> dict[int, bool | None]:
    """item_result_id → the latest human verdict (override, ruling or confirm) on it."""
    latest = latest_verdicts(result_id)
    return dict(s.execute(select(latest.c.item_result_id, latest.c.after)).tuples().all())


def final_score_of(s: Session, call: m.Call) -> FinalScore:
    """The call's current result with the latest human verdict on each item applied."""
    res = s.get(m.Result, call.current_result_id)
    items = s.scalars(
        select(m.ItemResult).where(m.ItemResult.result_id == res.id).order_by(m.ItemResult.position)
    ).all()
    human = human_verdicts(s, res.id)
    out: list[FinalItem] = []
    changed = False
    for it in items:
        passed = human.get(it.id, it.passed)
        changed |= passed != it.passed
        value = _item_value(it)
        out.append(
            FinalItem(
                item_result_id=it.id,
                id=it.item_id,
                section=it.section,
                title=it.title,
                critical=it.critical,
                applicable=it.applicable,
                max_points=value,
                machine_passed=it.passed,
                passed=passed,
                points=(it.points if passed == it.passed else value) if passed else 0.0,
                overridden=passed != it.passed,
                needs_review=it.needs_review and it.id not in human,
                reason=it.reason,
                evidence=list(it.evidence or []),
            )
        )
    if changed:
        from pipeline.score.form import form_total

        total, auto = form_total(out)
    else:
        total, auto = res.total, res.auto_fail
    open_dispute = s.scalar(
        select(m.Dispute.id).where(
            m.Dispute.call_pk == call.id,
            m.Dispute.status == "open",
            m.Dispute.item_result_id.in_([i.item_result_id for i in out] or [-1]),
        )
    )
    status: ReviewStatus = "disputed" if open_dispute else ("reviewed" if human else "auto")
    return FinalScore(
        call_id=call.call_id,
        result_id=res.id,
        rubric_id=res.rubric_id,
        rubric_version=res.rubric_version,
        machine_total=res.total,
        machine_auto_fail=res.auto_fail,
        total=total,
        max=res.max,
        auto_fail=auto,
        review_status=status,
        items=out,
    )


def refresh_review(s: Session, call: m.Call) -> FinalScore:
    """Recompute the call's final score and cache it (with its review status) in
    ``call_reviews`` for the queue, and the call's dashboard facts; returns it."""
    s.flush()
    final = final_score_of(s, call)
    row = s.get(m.CallReview, call.id)
    if row is None:
        row = m.CallReview(call_pk=call.id)
        s.add(row)
    row.result_id = final.result_id
    row.status = final.review_status
    row.final_total = final.total
    row.final_max = final.max
    row.final_auto_fail = final.auto_fail
    row.updated_at = m.utcnow()
    refresh_facts(s, call)  # the dashboard's figures, in the same transaction
    return final


def _current_item(s: Session, call: m.Call, item_result_id: int) -> m.ItemResult:
    item = s.get(m.ItemResult, item_result_id)
    if item is None or item.result_id != call.current_result_id:
        raise NotFound(f"no item {item_result_id} in the current result of {call.call_id!r}")
    return item


def _record(
    s: Session,
    call: m.Call,
    item: m.ItemResult,
    scope: Scope,
    kind: str,
    before: bool | None,
    after: bool | None,
    comment: str | None,
    dispute_id: int | None = None,
) -> None:
    """Append one human action on ``item`` to the audit log (never changed afterwards)."""
    s.add(
        m.ReviewAction(
            call_pk=call.id,
            result_id=item.result_id,
            item_result_id=item.id,
            user_id=scope.user_id,
            kind=kind,
            before=before,
            after=after,
            comment=comment,
            dispute_id=dispute_id,
        )
    )


class ReviewActions:
    """Final scores, the audit log, disputes, and the human actions that change them."""

    store: StoreBase
    # where a changed final score is also written as a webhook event, in the same
    # transaction (None: no webhook)
    events: Outbox | None

    def _changed(self, s: Session, call: m.Call) -> FinalScore:
        """:func:`refresh_review`, and the new score queued for the webhook."""
        final = refresh_review(s, call)
        if self.events is not None:
            self.events.add(s, "final_score", final.call_id, final.model_dump(mode="json"))
        return final

    def final_score(self, scope: Scope, call_id: str) -> FinalScore:
        with self.store.session(f"cannot read call {call_id!r}") as s:
            return final_score_of(s, visible_call(s, scope, call_id))

    def audit(self, scope: Scope, call_id: str) -> list[AuditRow]:
        """Every human action on the call, oldest first."""
        A, U, IR = m.ReviewAction, m.User, m.ItemResult  # noqa: N806
        with self.store.session(f"cannot read call {call_id!r}") as s:
            call = visible_call(s, scope, call_id)
            rows = s.execute(
                select(A, U.username, U.role, IR.item_id)
                .join(U, U.id == A.user_id)
                .join(IR, IR.id == A.item_result_id)
                .where(A.call_pk == call.id)
                .order_by(A.id)
            )
            return [
                AuditRow(
                    id=a.id,
                    kind=a.kind,
                    item_id=item_id,
                    item_result_id=a.item_result_id,
                    user=username,
                    role=role,
                    before=a.before,
                    after=a.after,
                    comment=a.comment,
                    dispute_id=a.dispute_id,
                    created_at=m.iso(a.created_at) or "",
                    result_id=a.result_id,
                    carried_from=a.carried_from_id,
                )
                for a, username, role, item_id in rows
            ]

    def disputes(self, scope: Scope, call_id: str) -> list[DisputeRow]:
        D, IR = m.Dispute, m.ItemResult  # noqa: N806
        with self.store.session(f"cannot read call {call_id!r}") as s:
            call = visible_call(s, scope, call_id)
            names = dict(s.execute(select(m.User.id, m.User.username)).tuples().all())
            rows = s.execute(
                select(D, IR.item_id).join(IR, IR.id == D.item_result_id).where(D.call_pk == call.id)
                .order_by(D.id)
            )  # fmt: skip
            return [
                DisputeRow(
                    id=d.id,
                    item_id=item_id,
                    item_result_id=d.item_result_id,
                    raised_by=names.get(d.raised_by, "?"),
                    reason=d.reason,
                    status=d.status,
                    ruled_by=names.get(d.ruled_by) if d.ruled_by else None,
                    ruling_comment=d.ruling_comment,
                    created_at=m.iso(d.created_at) or "",
                    ruled_at=m.iso(d.ruled_at),
                )
                for d, item_id in rows
            ]

    def override(
        self,
        scope: Scope,
        call_id: str,
        item_result_id: int,
        passed: bool,
        comment: str | None = None,
    ) -> FinalScore:
        """Set the item's verdict to ``passed`` (explicit, so a repeated or stale submit
        changes nothing) and record it; returns the new score."""
        if not isinstance(passed, bool):
            raise ReviewError("an override needs the verdict it sets: pass or fail")
        comment = bounded_text(comment, "comment")
        with self.store.transaction(f"cannot override on {call_id!r}") as s:
            call = visible_call(s, scope, call_id)
            item = _current_item(s, call, item_result_id)
            human = human_verdicts(s, item.result_id)
            before = human.get(item.id, item.passed)
            if before is passed and item.id in human:
                return final_score_of(s, call)  # already so: idempotent
            _record(
                s,
                call,
                item,
                scope,
                "override" if before is not passed else "confirm",
                before,
                passed,
                comment,
            )
            return self._changed(s, call)

    def confirm(self, scope: Scope, call_id: str, comment: str | None = None) -> FinalScore:
        """Confirm every item without a human verdict as the machine scored it."""
        comment = bounded_text(comment, "comment")
        with self.store.transaction(f"cannot confirm {call_id!r}") as s:
            call = visible_call(s, scope, call_id)
            human = human_verdicts(s, call.current_result_id)
            for item in s.scalars(
                select(m.ItemResult).where(m.ItemResult.result_id == call.current_result_id)
            ):
                if item.id not in human:
                    _record(s, call, item, scope, "confirm", item.passed, item.passed, comment)
            return self._changed(s, call)

    def dispute(self, scope: Scope, call_id: str, item_result_id: int, reason: str) -> int:
        """An agent contests an item of their own call; returns the dispute id."""
        reason = bounded_text(reason, "the dispute's reason", required=True)
        with self.store.transaction(f"cannot dispute on {call_id!r}") as s:
            call = visible_call(s, scope, call_id)
            item = _current_item(s, call, item_result_id)
            already = s.scalar(
                select(m.Dispute.id).where(
                    m.Dispute.item_result_id == item.id, m.Dispute.status == "open"
                )
            )
            if already is not None:
                raise ReviewError(f"item {item.item_id!r} already has an open dispute")
            current = human_verdicts(s, item.result_id).get(item.id, item.passed)
            d = m.Dispute(
                call_pk=call.id,
                item_result_id=item.id,
                raised_by=scope.user_id,
                reason=reason,
                status="open",
            )
            s.add(d)
            s.flush()
            _record(s, call, item, scope, "dispute", current, current, reason, d.id)
            refresh_review(s, call)
            return d.id

    def rule(
        self, scope: Scope, dispute_id: int, upheld: bool, comment: str | None = None
    ) -> FinalScore:
        """Uphold (the item's verdict flips) or reject (it stays) an open dispute."""
        comment = bounded_text(comment, "ruling comment")
        with self.store.transaction(f"cannot rule on dispute {dispute_id}") as s:
            d = s.get(m.Dispute, dispute_id)
            if d is None:
                raise NotFound(f"no dispute {dispute_id}")
            if d.status != "open":
                raise ReviewError(f"dispute {dispute_id} was already {d.status}")
            call = s.get(m.Call, d.call_pk)
            item = _current_item(s, call, d.item_result_id)
            before = human_verdicts(s, item.result_id).get(item.id, item.passed)
            d.status = "upheld" if upheld else "rejected"
            d.ruled_by = scope.user_id
            d.ruling_comment = comment
            d.ruled_at = m.utcnow()
            _record(
                s,
                call,
                item,
                scope,
                "ruling",
                before,
                _flip(before) if upheld else before,
                d.ruling_comment,
                d.id,
            )
            return self._changed(s, call)

    def call_id_of_dispute(self, dispute_id: int) -> str:
        with self.store.session("cannot read disputes") as s:
            call_id = s.scalar(
                select(m.Call.call_id)
                .join(m.Dispute, m.Dispute.call_pk == m.Call.id)
                .where(m.Dispute.id == dispute_id)
            )
            if call_id is None:
                raise NotFound(f"no dispute {dispute_id}")
            return call_id
