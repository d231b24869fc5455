"""Queue extras: saved filters per user and bulk confirmation of machine verdicts."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from pipeline.app.i18n import gettext as _
from pipeline.app.main import (
    DbId,
    User,
    check_csrf,
    gate,
    notify,
    queue_filter,
    reviews_of,
)
from pipeline.store.review import CAN_REVIEW, MAX_PAGE_SIZE, NotFound, ReviewError, UserInfo

router = APIRouter(include_in_schema=False, tags=["queue"])
Reviewer = Annotated[UserInfo, gate(CAN_REVIEW, "confirm reviews")]


@router.post("/filters")
async def save_filter(
    request: Request,
    user: User,
    name: Annotated[str, Form()] = "",
    query: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    from urllib.parse import parse_qsl

    from pipeline.app.main import QUEUE_FIELDS

    params = {k: v for k, v in parse_qsl(query) if v and k in QUEUE_FIELDS and k != "page"}
    queue_filter(params)  # 400 on values the queue would refuse
    try:
        reviews_of(request).save_filter(user.id, name, urlencode(params))
        request.session["flash"] = _("Filter saved.")
    except ReviewError as exc:
        request.session["flash"] = str(exc)
    return RedirectResponse("/?" + urlencode(params), status_code=303)


@router.post("/filters/{filter_id}/delete")
async def delete_filter(
    request: Request, filter_id: DbId, user: User, _csrf: None = Depends(check_csrf)
) -> Response:
    reviews_of(request).delete_filter(user.id, filter_id)
    return RedirectResponse("/", status_code=303)


@router.post("/queue/confirm")
async def bulk_confirm(
    request: Request,
    user: Reviewer,
    back: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    """Confirm the machine verdicts of the ticked calls (items without a human verdict)."""
    form = await request.form()
    call_ids = [str(v) for v in form.getlist("call_id")][:MAX_PAGE_SIZE]
    reviews = reviews_of(request)
    done = 0
    for call_id in call_ids:
        try:
            notify(request, reviews.confirm(user, call_id))
            done += 1
        except NotFound:
            continue
    request.session["flash"] = _("Confirmed %(n)d calls.") % {"n": done}
    target = back if back.startswith("?") and len(back) < 2000 else ""
    return RedirectResponse("/" + target, status_code=303)
