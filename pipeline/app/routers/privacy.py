"""Personal data in the review app: reviewers and admins may reveal a call's unredacted
transcript (kept only when ``QA_KEEP_UNREDACTED`` was on, see :mod:`pipeline.redact.vault`).

The check is on the server: trainers and agents get 403 whatever they send. A reveal is a
POST with the session's CSRF token, writes one audit row (who, when, which call) before the
page is rendered, and is never cached. The app decrypts with ``QA_PII_KEY``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from pipeline.app.deps import Reviews, check_csrf, gate
from pipeline.app.permissions import CAN_SEE_PERSONAL_DATA, scope_of
from pipeline.app.routers.calls import call_view
from pipeline.redact.vault import KEEP_ENV, KEY_ENV, VaultError, reader_from_env
from pipeline.store.review import UserInfo

router = APIRouter(include_in_schema=False, tags=["personal data"])
Revealer = Annotated[UserInfo, gate(CAN_SEE_PERSONAL_DATA, "see personal data")]


@router.post("/calls/{call_id:id}/personal-data", response_class=HTMLResponse)
async def reveal(
    request: Request,
    call_id: str,
    user: Revealer,
    reviews: Reviews,
    _csrf: Annotated[None, Depends(check_csrf)] = None,
) -> HTMLResponse:
    reviews.call_info(scope_of(user), call_id)  # NotFound for unknown calls
    try:
        vault = reader_from_env()
    except VaultError as exc:
        raise HTTPException(503, str(exc)) from None
    if vault is None:
        raise HTTPException(503, f"{KEY_ENV} is not set for the review app: cannot decrypt")
    try:
        original = reviews.store.get_unredacted(call_id, vault)
    except VaultError as exc:
        raise HTTPException(503, str(exc)) from None
    if original is None:
        raise HTTPException(
            404, f"no unredacted transcript is kept for this call ({KEEP_ENV} was off)"
        )
    reviews.store.record_reveal(call_id, user.id)
    page = call_view(request, user, call_id, unredacted=original)
    page.headers["Cache-Control"] = "no-store"
    return page
