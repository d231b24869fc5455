"""The review queue: the filtered page of calls, saved filters per user and bulk
confirmation of machine verdicts."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pipeline.app.deps import (
    QUEUE_FIELDS,
    DbId,
    Reviews,
    User,
    check_csrf,
    gate,
    notify,
    queue_filter,
    queue_params,
    render,
)
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_REVIEW, scope_of
from pipeline.store.review import MAX_PAGE_SIZE, PAGE_SIZES, NotFound, ReviewError, UserInfo

router = APIRouter(include_in_schema=False, tags=["queue"])
Reviewer = Annotated[UserInfo, gate(CAN_REVIEW, "confirm reviews")]


@router.get("/", response_class=HTMLResponse)
def queue_page(request: Request, user: User, reviews: Reviews) -> HTMLResponse:
    params = queue_params(request)
    f = queue_filter(params, reviews.prefs(user.id).per_page)
    page = reviews.queue(scope_of(user), f)
    base = {k: v for k, v in params.items() if k != "page"}
    return render(
        request,
        "queue.html",
        user,
        page=page,
        f=f,
        facets=reviews.facets(scope_of(user)),
        page_sizes=PAGE_SIZES,
        saved=reviews.saved_filters(user.id),
        filter_query=urlencode(base),
        offset=(f.page - 1) * f.per_page,
        prev_url="?" + urlencode({**base, "page": f.page - 1}) if f.page > 1 else None,
        next_url="?" + urlencode({**base, "page": f.page + 1}) if page.has_next else None,
    )


@router.post("/filters")
async def save_filter(
    request: Request,
    user: User,
    reviews: Reviews,
    name: Annotated[str, Form()] = "",
    query: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    params = {k: v for k, v in parse_qsl(query) if v and k in QUEUE_FIELDS and k != "page"}
    queue_filter(params)  # 400 on values the queue would refuse
    try:
        reviews.save_filter(user.id, name, urlencode(params))
        request.session["flash"] = _("Filter saved.")
    except ReviewError as exc:
        request.session["flash"] = str(exc)
    return RedirectResponse("/?" + urlencode(params), status_code=303)


@router.post("/filters/{filter_id}/delete")
async def delete_filter(
    filter_id: DbId, user: User, reviews: Reviews, _csrf: None = Depends(check_csrf)
) -> Response:
    reviews.delete_filter(user.id, filter_id)
    return RedirectResponse("/", status_code=303)


@router.post("/queue/confirm")
async def bulk_confirm(
    request: Request,
    user: Reviewer,
    reviews: Reviews,
    back: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    """Confirm the machine verdicts of the ticked calls (items without a human verdict)."""
    form = await request.form()
    call_ids = list(dict.fromkeys(str(v) for v in form.getlist("call_id")))[:MAX_PAGE_SIZE]
    done = 0
    for call_id in call_ids:
        try:
            reviews.confirm(scope_of(user), call_id)
            done += 1
        except NotFound:
            continue
    notify(request)
    request.session["flash"] = _("Confirmed %(n)d calls.") % {"n": done}
    target = back if back.startswith("?") and len(back) < 2000 else ""
    return RedirectResponse("/" + target, status_code=303)
