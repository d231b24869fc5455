"""Which human verdict counts on an item: the newest override, ruling or confirmation
(:func:`latest_verdicts`, the one query for it), and whether the final verdict differs from
the machine's (:func:`verdict_changed`). Used by the final score, the calibration page, the
dashboard's facts and the report."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Subquery, and_, func, or_, select

from pipeline.store import models as m

HUMAN_VERDICTS = ("override", "ruling", "confirm")  # the action kinds that set a verdict


def latest_verdicts(result_id: Any = None, call_pk: Any = None) -> Subquery:
    """The newest human verdict on each item (of the result ``result_id``, else of all;
    ``call_pk``: of that call's actions only, read by its index; either may be a bound
    parameter): columns ``item_result_id``, ``action_id`` and ``after`` (the verdict it set)."""
    A = m.ReviewAction  # noqa: N806
    newest = select(func.max(A.id)).where(A.kind.in_(HUMAN_VERDICTS)).group_by(A.item_result_id)
    if result_id is not None:
        newest = newest.where(A.result_id == result_id)
    if call_pk is not None:
        newest = newest.where(A.call_pk == call_pk)
    return (
        select(A.item_result_id, A.id.label("action_id"), A.after)
        .where(A.id.in_(newest))
        .subquery("latest_verdict")
    )


def verdict_changed(last: Any) -> Any:
    """SQL: the item's final verdict (the latest human one of ``last``, a
    :func:`latest_verdicts` subquery, else the machine's) differs from the machine's (None
    counts as a verdict of its own)."""
    IR = m.ItemResult  # noqa: N806
    final = func.coalesce(last.c.after, IR.passed)
    return or_(
        and_(final.is_(None), IR.passed.is_not(None)),
        and_(final.is_not(None), IR.passed.is_(None)),
        final != IR.passed,
    )
