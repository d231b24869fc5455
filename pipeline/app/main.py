"""The review web app: server-rendered pages (Jinja2) over :class:`ReviewStore`.

Every page, form and file checks the signed-in user on the server: agents only reach their
own calls (others answer 404, as if absent), only reviewers/admins override and rule, only
agents dispute, only admins manage users. Every form carries the session's CSRF token.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path as FsPath
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote, urlencode

from fastapi import Depends, FastAPI, Form, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from pipeline import __version__
from pipeline.app import i18n, security
from pipeline.app.audio import AudioUnavailable, playable
from pipeline.app.i18n import gettext as _
from pipeline.app.webhook import Webhook, webhook_from_env
from pipeline.config import enforce_offline
from pipeline.redact.audio_mask import redaction_intervals
from pipeline.schema import Evidence, Transcript
from pipeline.store import open_store
from pipeline.store.review import (
    CAN_CALIBRATE,
    CAN_DISPUTE,
    CAN_HEAR_REDACTED,
    CAN_MANAGE_USERS,
    CAN_REVIEW,
    MAX_TEXT,
    PAGE_SIZES,
    FinalScore,
    Forbidden,
    NotFound,
    QueueFilter,
    ReviewError,
    ReviewStore,
    UserInfo,
)

log = logging.getLogger(__name__)
HERE = FsPath(__file__).resolve().parent
CAN_COACH: frozenset[str] = CAN_CALIBRATE  # coaching packs: trainers, reviewers, admins
CAN_SEE_PERSONAL_DATA: frozenset[str] = CAN_HEAR_REDACTED  # unredacted transcripts
EVIDENCE_FIELDS: dict[str, None] = dict.fromkeys(Evidence.model_fields)
QUEUE_FIELDS = frozenset(QueueFilter.model_fields)
SESSION_MAX_AGE = 12 * 3600  # one working day (the server-side session expires with it)
MAX_ID = 2**31 - 1  # the largest integer key of the store (PostgreSQL INTEGER)
DbId = Annotated[int, Path(ge=1, le=MAX_ID)]
DRAFT_FIELDS = ("comment", "reason", "decision", "verdict")


class LoginRequired(Exception):
    """Raised by :func:`page_user` when no one is signed in (handled: redirect to /login).

    ``return_to``/``draft``: for a form posted after the session ended, the page to come
    back to and the text typed, so signing in again loses nothing."""

    def __init__(self, return_to: str | None = None, draft: dict[str, str] | None = None):
        self.return_to = return_to
        self.draft = draft or {}


# --------------------------------------------------------------------------- dependencies


def reviews_of(request: Request) -> ReviewStore:
    return request.app.state.reviews


async def page_user(request: Request) -> UserInfo:
    """The active user of this browser's server-side session (ended by logout, password
    change or deactivation, whatever the cookie says)."""
    token = request.session.get("sid")
    user = reviews_of(request).session_user(token) if isinstance(token, str) else None
    if user is None:
        request.session.pop("sid", None)
        if request.method == "POST":
            form = await request.form()
            draft = {k: str(form[k])[:MAX_TEXT] for k in DRAFT_FIELDS if form.get(k)}
            raise LoginRequired(_return_path(request), draft)
        raise LoginRequired()
    return user


def _return_path(request: Request) -> str:
    """Where a form posted to ``request`` was sent from: its call page, else the referrer."""
    parts = request.url.path.split("/")
    if len(parts) > 2 and parts[1] == "calls":
        return f"/calls/{parts[2]}"  # still escaped as in the raw path
    ref = request.headers.get("referer", "")
    base = str(request.base_url)
    return _safe_next(ref[len(base) - 1 :]) if ref.startswith(base) else "/"


User = Annotated[UserInfo, Depends(page_user)]


def require(user: UserInfo, roles: frozenset[str], what: str) -> None:
    if user.role not in roles:
        raise HTTPException(403, f"a {user.role} may not {what}")


def gate(roles: frozenset[str], what: str):
    """A dependency: the signed-in user, who must have one of ``roles`` (else 403)."""

    def dependency(user: User) -> UserInfo:
        require(user, roles, what)
        return user

    return Depends(dependency)


async def check_csrf(request: Request) -> None:
    form = await request.form()
    if not security.csrf_ok(request.session, form.get("csrf_token")):
        raise HTTPException(403, "missing or stale form token; reload the page and try again")


# --------------------------------------------------------------------------- helpers


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
            "can": {
                "review": bool(user and user.role in CAN_REVIEW),
                "dispute": bool(user and user.role in CAN_DISPUTE),
                "calibrate": bool(user and user.role in CAN_CALIBRATE),
                "users": bool(user and user.role in CAN_MANAGE_USERS),
                "coach": bool(user and user.role in CAN_COACH),
            },
            **ctx,
        },
    )


def back_to_call(call_id: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/calls/{security.url_id(call_id)}{anchor}", status_code=303)


def notify(request: Request, final: FinalScore) -> None:
    hook: Webhook | None = request.app.state.webhook
    if hook is not None:
        hook.send("final_score", final.model_dump(mode="json"))


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "?"


def _segments(text: str, marks: list[str]) -> list[tuple[str, bool]]:
    """Split ``text`` into (piece, highlighted) around the first occurrence of each mark."""
    spans: list[tuple[int, int]] = []
    for mark in marks:
        if mark and (at := text.find(mark)) >= 0:
            spans.append((at, at + len(mark)))
    spans.sort()
    out, pos = [], 0
    for start, end in spans:
        if start < pos:
            continue
        if start > pos:
            out.append((text[pos:start], False))
        out.append((text[start:end], True))
        pos = end
    if pos < len(text):
        out.append((text[pos:], False))
    return out or [(text, False)]


def transcript_view(transcript, final: FinalScore, risk) -> list[dict[str, Any]]:
    """Utterances with the items and risk findings that cite them (for highlighting)."""
    cited: dict[int, list[dict[str, Any]]] = {}
    marks: dict[int, list[str]] = {}
    for item in final.items:
        for ev in item.evidence:
            idx = ev.get("utterance")
            if idx is None:
                continue
            verdict = {True: "pass", False: "fail"}.get(item.passed, "review")
            cited.setdefault(idx, []).append({"id": item.id, "verdict": verdict})
            if ev.get("text"):
                marks.setdefault(idx, []).append(ev["text"])
    if risk is not None:
        for ev in risk.evidence:
            if ev.utterance is not None:
                cited.setdefault(ev.utterance, []).append({"id": "risk", "verdict": "risk"})
                if ev.text:
                    marks.setdefault(ev.utterance, []).append(ev.text)
    rows = []
    for i, u in enumerate(transcript.utterances if transcript else []):
        rows.append(
            {
                "idx": i,
                "speaker": u.speaker,
                "start": u.start,
                "end": u.end,
                "confidence": u.confidence,
                "segments": _segments(u.text, marks.get(i, [])),
                "cited": cited.get(i, []),
            }
        )
    return rows


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:g}"


# --------------------------------------------------------------------------- the app


def create_app(
    db_url: str | None = None,
    *,
    var_dir: str | FsPath = "var",
    secret_key: str | None = None,
    webhook: Webhook | None = None,
    https_only: bool = False,
    login_limiter: security.LoginLimiter | None = None,
) -> FastAPI:
    """The review app on the store at ``db_url`` (default: the configured database).

    ``var_dir`` holds the generated cookie key (unless ``QA_SECRET_KEY``/``secret_key``) and
    the audio cache. ``webhook`` defaults to ``QA_WEBHOOK_URL``/``QA_WEBHOOK_SECRET``.
    """
    enforce_offline()
    var_dir = FsPath(var_dir)
    app = FastAPI(
        title="callqa review API",
        version=__version__,
        description="Auto-scored calls, final scores with human rulings, reviews, disputes.",
        docs_url=None,  # /api/docs: pipeline.app.routers.docs (assets from a package)
        redoc_url=None,
    )
    app.state.reviews = ReviewStore(open_store(db_url))
    app.state.var_dir = var_dir
    app.state.audio_cache = var_dir / "audio_cache"
    app.state.webhook = webhook if webhook is not None else webhook_from_env()
    app.state.limiter = login_limiter or security.LoginLimiter()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["clock"] = _clock
    templates.env.filters["fmt"] = _fmt
    templates.env.filters["url_id"] = security.url_id
    i18n.install(templates.env)
    app.state.templates = templates
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key or security.secret_key(var_dir),
        session_cookie="callqa_session",
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=https_only,
    )

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        i18n.activate(i18n.choose(None, request.headers.get("accept-language")))
        response = await call_next(request)
        security.security_headers(request.url.path, response.headers)
        return response

    app.add_middleware(security.PathIds)  # outermost: routes see ids with their own "/"
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        if exc.return_to is not None:
            if exc.draft:
                draft = {"path": exc.return_to, "form": request.url.path, **exc.draft}
                request.session["draft"] = reviews_of(request).save_draft(draft)
            target = exc.return_to
        else:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        err = (exc.errors() or [{}])[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("path", "query", "body"))
        message = f"bad {where or 'request'}: {err.get('msg', 'invalid')}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=400)
        return HTMLResponse(_error_page(_("Bad request"), message), status_code=400)

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> Response:
        return JSONResponse({"detail": "number out of range"}, status_code=400)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return HTMLResponse(_error_page(_("Not found"), str(exc)), status_code=404)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return HTMLResponse(_error_page(_("Forbidden"), str(exc)), status_code=403)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or exc.status_code < 400:
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        title = {403: _("Forbidden"), 404: _("Not found"), 400: _("Bad request")}.get(exc.status_code, _("Error"))  # fmt: skip
        return HTMLResponse(
            _error_page(title, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(ReviewError)
    async def _bad(request: Request, exc: ReviewError) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return HTMLResponse(_error_page(_("Bad request"), str(exc)), status_code=400)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # ------------------------------------------------------------------ login

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", None, next=_safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        limiter: security.LoginLimiter = request.app.state.limiter
        reviews = reviews_of(request)
        ip = _client_ip(request)
        username = username[:255]
        wait = limiter.retry_after(reviews, username, ip)
        if wait > 0:
            resp = render(
                request,
                "login.html",
                None,
                next=_safe_next(next),
                error=_("Too many failed attempts; try again in %(n)d s.") % {"n": int(wait) + 1},
            )
            resp.status_code = 429
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        user = reviews.authenticate(username, password)
        if user is None:
            limiter.failed(reviews, username, ip)
            resp = render(
                request,
                "login.html",
                None,
                next=_safe_next(next),
                error=_("Wrong name or password."),
            )
            resp.status_code = 401
            return resp
        limiter.succeeded(reviews, username, ip)
        draft = request.session.get("draft")
        request.session.clear()  # a new session: no fixation
        request.session["sid"] = reviews.create_session(user.id, ip)
        if draft:
            request.session["draft"] = draft
        security.csrf_token(request.session)
        return RedirectResponse(_safe_next(next), status_code=303)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, _csrf: None = Depends(check_csrf)) -> Response:
        reviews_of(request).revoke_session(request.session.get("sid"))
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------ queue

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def queue_page(request: Request, user: User) -> HTMLResponse:
        reviews = reviews_of(request)
        params = queue_params(request)
        f = queue_filter(params, reviews.prefs(user.id).per_page)
        page = reviews.queue(user, f)
        base = {k: v for k, v in params.items() if k != "page"}
        return render(
            request,
            "queue.html",
            user,
            page=page,
            f=f,
            facets=reviews.facets(user),
            page_sizes=PAGE_SIZES,
            saved=reviews.saved_filters(user.id),
            filter_query=urlencode(base),
            offset=(f.page - 1) * f.per_page,
            prev_url="?" + urlencode({**base, "page": f.page - 1}) if f.page > 1 else None,
            next_url="?" + urlencode({**base, "page": f.page + 1}) if page.has_next else None,
        )

    # ------------------------------------------------------------------ one call

    @app.get("/calls/{call_id:id}", response_class=HTMLResponse, include_in_schema=False)
    def call_page(request: Request, call_id: str, user: User) -> HTMLResponse:
        return call_view(request, user, call_id)

    @app.get("/calls/{call_id:id}/audio", include_in_schema=False)
    def call_audio(request: Request, call_id: str, user: User) -> Response:
        return serve_audio(request, user, call_id)

    @app.post("/calls/{call_id:id}/items/{item_result_id}/override", include_in_schema=False)
    async def override(
        request: Request,
        call_id: str,
        item_result_id: DbId,
        user: User,
        verdict: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_REVIEW, "override items")
        if verdict not in ("pass", "fail"):
            raise HTTPException(400, _("an override sets a verdict: pass or fail"))
        final = reviews_of(request).override(
            user, call_id, item_result_id, verdict == "pass", comment
        )
        notify(request, final)
        return back_to_call(call_id, _keep_query(next) + f"#item-{item_result_id}")

    @app.post("/calls/{call_id:id}/confirm", include_in_schema=False)
    async def confirm(
        request: Request,
        call_id: str,
        user: User,
        comment: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_REVIEW, "confirm reviews")
        final = reviews_of(request).confirm(user, call_id, comment)
        notify(request, final)
        if next.startswith("/calls/"):  # "confirm all and next"
            return RedirectResponse(_safe_next(next), status_code=303)
        return back_to_call(call_id, _keep_query(next))

    @app.post("/calls/{call_id:id}/items/{item_result_id}/dispute", include_in_schema=False)
    async def dispute(
        request: Request,
        call_id: str,
        item_result_id: DbId,
        user: User,
        reason: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_DISPUTE, "raise disputes")
        try:
            reviews_of(request).dispute(user, call_id, item_result_id, reason)
        except (NotFound, Forbidden):
            raise
        except ReviewError as exc:
            request.session["flash"] = str(exc)
        return back_to_call(call_id, "#disputes")

    @app.post("/disputes/{dispute_id}/ruling", include_in_schema=False)
    async def ruling(
        request: Request,
        dispute_id: DbId,
        user: User,
        decision: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_REVIEW, "rule on disputes")
        if decision not in ("uphold", "reject"):
            raise HTTPException(400, _("decision must be uphold or reject"))
        reviews = reviews_of(request)
        call_id = reviews.call_id_of_dispute(dispute_id)
        try:
            final = reviews.rule(user, dispute_id, decision == "uphold", comment)
        except (NotFound, Forbidden):
            raise
        except ReviewError as exc:
            request.session["flash"] = str(exc)
            return back_to_call(call_id, "#disputes")
        notify(request, final)
        return back_to_call(call_id, "#disputes")

    # ------------------------------------------------------------------ calibration

    @app.get("/calibration", response_class=HTMLResponse, include_in_schema=False)
    def calibration_page(request: Request, user: User) -> HTMLResponse:
        require(user, CAN_CALIBRATE, "see calibration")
        return render(request, "calibration.html", user, rows=reviews_of(request).calibration())

    @app.get("/calibration.csv", include_in_schema=False)
    def calibration_csv(request: Request, user: User) -> Response:
        require(user, CAN_CALIBRATE, "see calibration")
        rows = reviews_of(request).calibration()
        buf = io.StringIO()
        fields = list(rows[0].model_dump()) if rows else ["rubric_id", "item_id"]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(r.model_dump() for r in rows)
        return Response(
            buf.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="calibration.csv"'},
        )

    # ------------------------------------------------------------------ users (admin)

    @app.get("/users", response_class=HTMLResponse, include_in_schema=False)
    def users_page(request: Request, user: User) -> HTMLResponse:
        require(user, CAN_MANAGE_USERS, "manage users")
        token = request.session.pop("new_token", None)
        return render(
            request, "users.html", user, users=reviews_of(request).list_users(), token=token
        )

    @app.post("/users", include_in_schema=False)
    async def add_user(
        request: Request,
        user: User,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "",
        agent_id: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_MANAGE_USERS, "manage users")
        try:
            added = reviews_of(request).add_user(username, password, role, agent_id or None)
            request.session["flash"] = _("Added %(name)s (%(role)s).") % {"name": added.username, "role": added.role}  # fmt: skip
        except ReviewError as exc:
            request.session["flash"] = str(exc)
        return RedirectResponse("/users", status_code=303)

    @app.post("/users/{username:id}/active", include_in_schema=False)
    async def set_active(
        request: Request,
        username: str,
        user: User,
        active: Annotated[str, Form()] = "0",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_MANAGE_USERS, "manage users")
        if username == user.username:
            request.session["flash"] = _("You cannot deactivate yourself.")
        else:
            reviews_of(request).set_active(username, active == "1")
        return RedirectResponse("/users", status_code=303)

    @app.post("/users/{username:id}/token", include_in_schema=False)
    async def new_token(
        request: Request, username: str, user: User, _csrf: None = Depends(check_csrf)
    ) -> Response:
        require(user, CAN_MANAGE_USERS, "manage users")
        request.session["new_token"] = {
            "user": username,
            "token": reviews_of(request).issue_token(username),
        }
        return RedirectResponse("/users", status_code=303)

    from pipeline.app.api import router as api_router
    from pipeline.app.coaching import router as coaching_router
    from pipeline.app.privacy import router as privacy_router
    from pipeline.app.routers import account, docs, failed, queue, search

    app.include_router(api_router)
    app.include_router(privacy_router)
    app.include_router(coaching_router)
    for module in (account, queue, search, failed, docs):
        app.include_router(module.router)
    return app


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


def _keep_query(next_url: str) -> str:
    """The queue context (``?q=...&pos=``) of the call page a form came from."""
    return next_url if next_url.startswith("?") and len(next_url) < 2000 else ""


def call_view(
    request: Request, user: UserInfo, call_id: str, unredacted: Transcript | None = None
) -> HTMLResponse:
    """The call page; ``unredacted`` (reviewers/admins, see pipeline.app.privacy) replaces
    the redacted transcript's text with what was said."""
    from pipeline.app import timeline

    reviews = reviews_of(request)
    info = reviews.call_info(user, call_id)  # NotFound for other agents' calls
    final = reviews.final_score(user, call_id)
    for item in final.items:  # stored evidence omits unset fields; the template reads them all
        item.evidence = [{**EVIDENCE_FIELDS, **e} for e in item.evidence]
    transcript = reviews.store.get_transcript(call_id)
    result = reviews.store.get_result(call_id)
    risk = result.risk if result else None
    disputes = reviews.disputes(user, call_id)
    open_items = {d.item_result_id for d in disputes if d.status == "open"}
    may_see = user.role in CAN_SEE_PERSONAL_DATA
    # queue context (?q=<filters>&pos=<row>) for n/p and "confirm all and next"
    context = request.query_params.get("q", "")[:2000]
    position = _bounded_int(request.query_params.get("pos"))
    f = queue_filter(
        {k: v for k, v in parse_qsl(context) if v and k in QUEUE_FIELDS},
        reviews.prefs(user.id).per_page,
    )
    prev_id, next_id = reviews.neighbours(user, f, call_id, position)

    def link(target: str | None, pos: int | None) -> str | None:
        if target is None:
            return None
        query = urlencode({"q": context, "pos": max(0, pos or 0)})
        return f"/calls/{security.url_id(target)}?{query}"

    here = "?" + urlencode({"q": context, "pos": position or 0})
    utterances = transcript.utterances if transcript else []
    draft = reviews.take_draft(request.session.pop("draft", None))  # typed before sign-in
    if draft and not _same_call_path(draft.get("path", ""), call_id):
        draft = None
    return render(
        request,
        "call.html",
        user,
        info=info,
        call_url=f"/calls/{security.url_id(info.call_id)}",
        final=final,
        risk=risk,
        utterances=transcript_view(unredacted or transcript, final, risk),
        timeline=timeline.build(
            utterances,
            final.items,
            risk,
            info.duration or (transcript.duration if transcript else None),
            info.source,
            request.app.state.audio_cache,
        ),
        has_audio=timeline.is_recording(info.source),
        audit=reviews.audit(user, call_id),
        disputes=disputes,
        open_items=open_items,
        redacted_audio=bool(redaction_intervals(transcript)),
        revealed=unredacted is not None,
        can_reveal=may_see and reviews.store.has_unredacted(call_id),
        reveals=reviews.store.reveals(call_id) if may_see else [],
        prev_url=link(prev_id, (position or 0) - 1),
        next_url=link(next_id, (position or 0) + 1),
        here=here,
        draft=draft,
    )


def _same_call_path(path: str, call_id: str) -> bool:
    return path == f"/calls/{security.url_id(call_id)}" or unquote(path) == f"/calls/{call_id}"


def _bounded_int(value: str | None, top: int = 10_000_000) -> int | None:
    """A small non-negative integer from a query string, else None (never an error)."""
    if value is None or not value.isdigit() or len(value) > 9:
        return None
    return min(int(value), top)


def serve_audio(request: Request, user: UserInfo, call_id: str) -> Response:
    """The call's recording with HTTP Range support (FileResponse answers 206 to a Range)."""
    reviews = reviews_of(request)
    info = reviews.call_info(user, call_id)  # NotFound for calls the user may not see
    if not info.source:
        raise HTTPException(404, "this call has no recording")
    # every role hears the redacted recording (issue 17); the original is never served
    spans = redaction_intervals(reviews.store.get_transcript(call_id))
    try:
        path, media_type = playable(info.source, request.app.state.audio_cache, spans)
    except AudioUnavailable as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "private, no-store", "Accept-Ranges": "bytes"},
        content_disposition_type="inline",
    )


def _safe_next(target: str) -> str:
    """Only same-site paths (no open redirect to //evil.example)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _error_page(title: str, message: str) -> str:
    from html import escape

    return (
        "<!doctype html><meta charset=utf-8><link rel=stylesheet href=/static/app.css>"
        f"<title>{escape(title)}</title><main class=narrow><h1>{escape(title)}</h1>"
        f"<p>{escape(message)}</p><p><a href='/'>Back to the queue</a></p></main>"
    )
