"""The app's error answers, registered in one place (:func:`install`): JSON under ``/api/``,
a short HTML page elsewhere, and a redirect to the sign-in page when no one is signed in."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from pipeline.app.deps import LoginRequired, reviews_of
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import NotPermitted
from pipeline.store.review import NotFound, ReviewError


def error_page(title: str, message: str) -> str:
    return (
        "<!doctype html><meta charset=utf-8><link rel=stylesheet href=/static/app.css>"
        f"<title>{escape(title)}</title><main class=narrow><h1>{escape(title)}</h1>"
        f"<p>{escape(message)}</p><p><a href='/'>Back to the queue</a></p></main>"
    )


def _answer(request: Request, status: int, title: str, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"detail": message}, status_code=status)
    return HTMLResponse(error_page(title, message), status_code=status)


async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
    if exc.return_to is not None:
        if exc.draft and exc.owner is not None:
            draft = {"path": exc.return_to, "form": request.url.path, **exc.draft}
            request.session["draft"] = reviews_of(request).save_draft(exc.owner, draft)
        target = exc.return_to
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    err = (exc.errors() or [{}])[0]
    where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query", "body"))
    return _answer(request, 400, _("Bad request"), f"bad {where or 'request'}: {err.get('msg', 'invalid')}")  # fmt: skip


async def _overflow(request: Request, exc: OverflowError) -> Response:
    return JSONResponse({"detail": "number out of range"}, status_code=400)


async def _not_found(request: Request, exc: NotFound) -> Response:
    return _answer(request, 404, _("Not found"), str(exc))


async def _not_permitted(request: Request, exc: NotPermitted) -> Response:
    return _answer(request, 403, _("Forbidden"), str(exc))


async def _http(request: Request, exc: HTTPException) -> Response:
    if request.url.path.startswith("/api/") or exc.status_code < 400:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)  # fmt: skip
    title = {403: _("Forbidden"), 404: _("Not found"), 400: _("Bad request")}.get(exc.status_code, _("Error"))  # fmt: skip
    return HTMLResponse(
        error_page(title, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _refused(request: Request, exc: ReviewError) -> Response:
    return _answer(request, 400, _("Bad request"), str(exc))


def install(app: FastAPI) -> None:
    """Register every error handler of the review app."""
    app.add_exception_handler(LoginRequired, _login)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(OverflowError, _overflow)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(NotPermitted, _not_permitted)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(ReviewError, _refused)
