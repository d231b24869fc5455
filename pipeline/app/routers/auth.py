"""Signing in and out of the review app (throttled, CSRF-checked, a new session each time)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pipeline.app import security
from pipeline.app.deps import Reviews, check_csrf, client_ip, render, safe_next
from pipeline.app.i18n import gettext as _

router = APIRouter(include_in_schema=False, tags=["sign-in"])


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", None, next=safe_next(next), error=None)


@router.post("/login")
async def login(
    request: Request,
    reviews: Reviews,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
    _csrf: None = Depends(check_csrf),
) -> Response:
    limiter: security.LoginLimiter = request.app.state.limiter
    ip = client_ip(request)
    user, wait = await limiter.verify(reviews, username, password, ip)
    if wait > 0:
        resp = render(
            request,
            "login.html",
            None,
            next=safe_next(next),
            error=_("Too many failed attempts; try again in %(n)d s.") % {"n": int(wait) + 1},
        )
        resp.status_code = 429
        resp.headers["Retry-After"] = str(int(wait) + 1)
        return resp
    if user is None:
        resp = render(
            request, "login.html", None, next=safe_next(next), error=_("Wrong name or password.")
        )
        resp.status_code = 401
        return resp
    draft = request.session.get("draft")
    request.session.clear()  # a new session: no fixation
    request.session["sid"] = reviews.create_session(user.id, ip)
    if draft:
        request.session["draft"] = draft
    security.csrf_token(request.session)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
async def logout(request: Request, reviews: Reviews, _csrf: None = Depends(check_csrf)) -> Response:
    reviews.revoke_session(request.session.get("sid"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
