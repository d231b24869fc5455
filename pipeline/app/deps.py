"""What the routers share: the review store of the app, the signed-in user (page session or
API token), role gates, the CSRF check, page rendering (templates, i18n) and small helpers
for redirects and the queue's query string."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from pipeline import __version__
from pipeline.app import i18n, security
from pipeline.app.permissions import capabilities, permit
from pipeline.app.webhook import Sender
from pipeline.store.review import MAX_TEXT, QueueFilter, ReviewStore, UserInfo

HERE = FsPath(__file__).resolve().parent
QUEUE_FIELDS = frozenset(QueueFilter.model_fields)
MAX_ID = 2**31 - 1  # the largest integer key of the store (PostgreSQL INTEGER)
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]
DRAFT_FIELDS = ("comment", "reason", "decision", "verdict")
bearer = HTTPBearer(auto_error=False, description="API token of a callqa user")


class LoginRequired(Exception):
    """Raised by :func:`page_user` when no one is signed in (handled: redirect to /login).

    ``return_to``/``draft``: for a form posted after the session ended, the page to come
    back to and the text typed, so signing in again loses nothing."""

    def __init__(
        self,
        return_to: str | None = None,
        draft: dict[str, str] | None = None,
        owner: int | None = None,
    ):
        self.return_to = return_to
        self.draft = draft or {}
        self.owner = owner  # the user whose session ended: the only one the draft is for


# --------------------------------------------------------------------------- the store


def reviews_of(request: Request) -> ReviewStore:
    return request.app.state.reviews


Reviews = Annotated[ReviewStore, Depends(reviews_of)]


# --------------------------------------------------------------------------- who is asking


async def page_user(request: Request) -> UserInfo:
    """The active user of this browser's server-side session (ended by logout, password
    change or deactivation, whatever the cookie says).

    A form posted after the session ended is kept as a draft only when its CSRF token is
    the session's and the session was issued to a known user, and only for that user: a
    request from another site or from nobody is sent to sign in and writes nothing (no
    row, no cookie)."""
    token = request.session.get("sid")
    reviews = reviews_of(request)
    user = reviews.session_user(token) if isinstance(token, str) else None
    if user is None:
        if request.method != "POST":
            request.session.pop("sid", None)
            raise LoginRequired()
        form = await request.form()
        owner = None
        if isinstance(token, str) and security.csrf_ok(request.session, form.get("csrf_token")):
            owner = reviews.session_owner(token)
        request.session.pop("sid", None)
        draft = {k: str(form[k])[:MAX_TEXT] for k in DRAFT_FIELDS if form.get(k)}
        raise LoginRequired(return_path(request), draft if owner else None, owner)
    return user


def api_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> UserInfo:
    """The active user of a bearer API token (401 without one)."""
    user = reviews_of(request).user_by_token(creds.credentials) if creds else None
    if user is None:
        raise HTTPException(401, "a valid API token is required", {"WWW-Authenticate": "Bearer"})
    return user


User = Annotated[UserInfo, Depends(page_user)]
ApiUser = Annotated[UserInfo, Depends(api_user)]


def gate(roles: frozenset[str], what: str, *, api: bool = False) -> Any:
    """A dependency: the signed-in user (``api``: of the bearer token), who must have one of
    ``roles`` (else 403)."""
    signed_in = api_user if api else page_user

    def dependency(request: Request, user: UserInfo = Depends(signed_in)) -> UserInfo:  # noqa: B008
        if user.role not in roles and (invalid := _invalid_params(request)):
            raise RequestValidationError(invalid)  # a bad id answers 400 whoever asks
        return permit(user, roles, what)

    return Depends(dependency)


def _invalid_params(request: Request) -> list[Any]:
    """Validation errors of the route's own path and query parameters (FastAPI checks them
    after the dependencies; a refused request still answers a malformed one with 400)."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return []
    _, path_errors = request_params_to_args(dependant.path_params, request.path_params)
    _, query_errors = request_params_to_args(dependant.query_params, request.query_params)
    return path_errors + query_errors


async def check_csrf(request: Request) -> None:
    form = await request.form()
    if not security.csrf_ok(request.session, form.get("csrf_token")):
        raise HTTPException(403, "missing or stale form token; reload the page and try again")


# --------------------------------------------------------------------------- pages


def templates() -> Jinja2Templates:
    """The page templates with callqa's filters and translations."""
    pages = Jinja2Templates(directory=str(HERE / "templates"))
    pages.env.filters["clock"] = _clock
    pages.env.filters["fmt"] = _fmt
    pages.env.filters["url_id"] = security.url_id
    i18n.install(pages.env)
    return pages


def language_of(request: Request, user: UserInfo | None) -> str:
    saved = reviews_of(request).prefs(user.id).language if user else None
    return i18n.choose(saved, request.headers.get("accept-language"))


def render(request: Request, name: str, user: UserInfo | None, **ctx: Any) -> HTMLResponse:
    lang = language_of(request, user)
    i18n.activate(lang)
    return request.app.state.templates.TemplateResponse(
        request,
        name,
        {
            "lang": lang,
            "html_lang": i18n.HTML_LANG[lang],
            "languages": i18n.LANGUAGE_NAMES,
            "max_text": MAX_TEXT,
            "user": user,
            "csrf": security.csrf_token(request.session),
            "flash": request.session.pop("flash", None),
            "version": __version__,
            "can": capabilities(user),
            **ctx,
        },
    )


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:g}"


# --------------------------------------------------------------------------- after an action


def notify(request: Request) -> None:
    """Wake the webhook's sender after a change (the store queued its event, if any)."""
    sender: Sender | None = request.app.state.sender
    if sender is not None:
        sender.wake()


def back_to_call(call_id: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/calls/{security.url_id(call_id)}{anchor}", status_code=303)


def safe_next(target: str) -> str:
    """Only same-site paths (no open redirect to //evil.example)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def keep_query(next_url: str) -> str:
    """The queue context (``?q=...&pos=``) of the call page a form came from."""
    return next_url if next_url.startswith("?") and len(next_url) < 2000 else ""


def return_path(request: Request) -> str:
    """Where a form posted to ``request`` was sent from: its call page, else the referrer."""
    parts = request.url.path.split("/")
    if len(parts) > 2 and parts[1] == "calls":
        return f"/calls/{parts[2]}"  # still escaped as in the raw path
    ref = request.headers.get("referer", "")
    base = str(request.base_url)
    return safe_next(ref[len(base) - 1 :]) if ref.startswith(base) else "/"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


# --------------------------------------------------------------------------- the queue's filters


def queue_params(request: Request) -> dict[str, str]:
    """The queue filters of a query string (empty values dropped)."""
    return {k: v for k, v in request.query_params.items() if v != "" and k in QUEUE_FIELDS}


def queue_filter(params: dict[str, str], per_page: int | None = None) -> QueueFilter:
    """A validated :class:`QueueFilter` (400 on bad values); the user's saved page size
    unless the query sets one."""
    if per_page and "per_page" not in params:
        params = {**params, "per_page": str(per_page)}
    try:
        return QueueFilter.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise HTTPException(
            400, f"bad filter {'.'.join(map(str, err['loc']))}: {err['msg']}"
        ) from None
