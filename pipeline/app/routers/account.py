"""The signed-in user's own settings: interface language, queue page size, password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pipeline.app.deps import User, check_csrf, client_ip, render, reviews_of, safe_next
from pipeline.app.i18n import LANGUAGES
from pipeline.app.i18n import gettext as _
from pipeline.app.security import LoginLimiter
from pipeline.store.review import PAGE_SIZES, ReviewError, UserInfo

router = APIRouter(include_in_schema=False, tags=["account"])


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, user: User) -> HTMLResponse:
    return _page(request, user)


def _page(request: Request, user: UserInfo, error: str | None = None) -> HTMLResponse:
    """The account page (``error``: why the password was not changed; answered 400)."""
    prefs = reviews_of(request).prefs(user.id)
    page = render(request, "account.html", user, prefs=prefs, page_sizes=PAGE_SIZES, error=error)
    if error is not None:
        page.status_code = 400
    return page


@router.post("/account/language")
async def set_language(
    request: Request,
    user: User,
    language: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    _csrf: None = Depends(check_csrf),
) -> Response:
    """Save the interface language (empty: follow the browser)."""
    reviews_of(request).set_prefs(user.id, language=language if language in LANGUAGES else None)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/account/page-size")
async def set_page_size(
    request: Request,
    user: User,
    per_page: Annotated[int, Form(ge=1, le=1000)] = 50,
    next: Annotated[str, Form()] = "/",
    _csrf: None = Depends(check_csrf),
) -> Response:
    reviews_of(request).set_prefs(user.id, per_page=per_page)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/account/password")
async def change_password(
    request: Request,
    user: User,
    current: Annotated[str, Form()] = "",
    new: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    """A new password ends every session of the account (this one too: sign in again)."""
    reviews = reviews_of(request)
    limiter: LoginLimiter = request.app.state.limiter
    checked, wait = await limiter.verify(reviews, user.username, current, client_ip(request))
    if wait > 0:
        page = _page(request, user, _("Too many failed attempts; try again in %(n)d s.") % {"n": int(wait) + 1})  # fmt: skip
        page.status_code = 429
        page.headers["Retry-After"] = str(int(wait) + 1)
        return page
    if checked is None:
        return _page(request, user, _("The current password is wrong."))
    try:
        reviews.set_password(user.username, new)
    except ReviewError as exc:
        return _page(request, user, str(exc))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
