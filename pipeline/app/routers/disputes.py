"""Disputes: an agent contests an item of their own call; a reviewer upholds or rejects it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from pipeline.app.deps import DbId, Reviews, back_to_call, check_csrf, gate, notify
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_DISPUTE, CAN_REVIEW, scope_of
from pipeline.store.review import NotFound, ReviewError, UserInfo

router = APIRouter(include_in_schema=False, tags=["disputes"])
Agent = Annotated[UserInfo, gate(CAN_DISPUTE, "raise disputes")]
Reviewer = Annotated[UserInfo, gate(CAN_REVIEW, "rule on disputes")]


@router.post("/calls/{call_id:id}/items/{item_result_id}/dispute")
async def dispute(
    request: Request,
    call_id: str,
    item_result_id: DbId,
    user: Agent,
    reviews: Reviews,
    reason: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    try:
        reviews.dispute(scope_of(user), call_id, item_result_id, reason)
    except NotFound:
        raise
    except ReviewError as exc:
        request.session["flash"] = str(exc)
    return back_to_call(call_id, "#disputes")


@router.post("/disputes/{dispute_id}/ruling")
async def ruling(
    request: Request,
    dispute_id: DbId,
    user: Reviewer,
    reviews: Reviews,
    decision: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    if decision not in ("uphold", "reject"):
        raise HTTPException(400, _("decision must be uphold or reject"))
    call_id = reviews.call_id_of_dispute(dispute_id)
    try:
        reviews.rule(scope_of(user), dispute_id, decision == "uphold", comment)
    except NotFound:
        raise
    except ReviewError as exc:
        request.session["flash"] = str(exc)
        return back_to_call(call_id, "#disputes")
    notify(request)
    return back_to_call(call_id, "#disputes")
