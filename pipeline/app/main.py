"""The review web app: server-rendered pages (Jinja2) over :class:`ReviewStore`.

Every page, form and file checks the signed-in user on the server: agents only reach their
own calls (others answer 404, as if absent), only reviewers/admins override and rule, only
agents dispute, only admins manage users. Every form carries the session's CSRF token.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from pipeline import __version__
from pipeline.app import security
from pipeline.app.audio import AudioUnavailable, playable
from pipeline.app.webhook import Webhook, webhook_from_env
from pipeline.redact.audio import redaction_intervals
from pipeline.schema import Evidence, Transcript
from pipeline.store import open_store
from pipeline.store.review import (
    CAN_CALIBRATE,
    CAN_DISPUTE,
    CAN_HEAR_REDACTED,
    CAN_MANAGE_USERS,
    CAN_REVIEW,
    FinalScore,
    Forbidden,
    NotFound,
    QueueFilter,
    ReviewError,
    ReviewStore,
    UserInfo,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CAN_COACH: frozenset[str] = CAN_CALIBRATE  # coaching packs: trainers, reviewers, admins
CAN_SEE_PERSONAL_DATA: frozenset[str] = CAN_HEAR_REDACTED  # unredacted transcripts
EVIDENCE_FIELDS: dict[str, None] = dict.fromkeys(Evidence.model_fields)
SESSION_MAX_AGE = 12 * 3600  # one working day


class LoginRequired(Exception):
    """Raised by :func:`page_user` when no one is signed in (handled: redirect to /login)."""


# --------------------------------------------------------------------------- dependencies


def reviews_of(request: Request) -> ReviewStore:
    return request.app.state.reviews


def page_user(request: Request) -> UserInfo:
    """The signed-in, still active user of this browser session."""
    uid = request.session.get("uid")
    user = request.app.state.reviews.get_user(uid) if isinstance(uid, int) else None
    if user is None:
        request.session.pop("uid", None)
        raise LoginRequired()
    return user


User = Annotated[UserInfo, Depends(page_user)]


def require(user: UserInfo, roles: frozenset[str], what: str) -> None:
    if user.role not in roles:
        raise HTTPException(403, f"a {user.role} may not {what}")


async def check_csrf(request: Request) -> None:
    form = await request.form()
    if not security.csrf_ok(request.session, form.get("csrf_token")):
        raise HTTPException(403, "missing or stale form token; reload the page and try again")


# --------------------------------------------------------------------------- helpers


def render(request: Request, name: str, user: UserInfo | None, **ctx: Any) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request,
        name,
        {
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
    return RedirectResponse(f"/calls/{call_id}{anchor}", status_code=303)


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
    var_dir: str | Path = "var",
    secret_key: str | None = None,
    webhook: Webhook | None = None,
    https_only: bool = False,
    login_limiter: security.LoginLimiter | None = None,
) -> FastAPI:
    """The review app on the store at ``db_url`` (default: the configured database).

    ``var_dir`` holds the generated cookie key (unless ``QA_SECRET_KEY``/``secret_key``) and
    the audio cache. ``webhook`` defaults to ``QA_WEBHOOK_URL``/``QA_WEBHOOK_SECRET``.
    """
    var_dir = Path(var_dir)
    app = FastAPI(
        title="callqa review API",
        version=__version__,
        description="Auto-scored calls, final scores with human rulings, reviews, disputes.",
        docs_url="/api/docs",
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
    app.state.templates = templates
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key or security.secret_key(var_dir),
        session_cookie="callqa_session",
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=https_only,
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=404)
        return HTMLResponse(_error_page("Not found", str(exc)), status_code=404)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        return HTMLResponse(_error_page("Forbidden", str(exc)), status_code=403)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api/") or exc.status_code < 400:
            return JSONResponse(
                {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
            )
        title = {403: "Forbidden", 404: "Not found"}.get(exc.status_code, "Error")
        return HTMLResponse(
            _error_page(title, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(ReviewError)
    async def _bad(request: Request, exc: ReviewError) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=400)

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
        ip = _client_ip(request)
        wait = limiter.retry_after(username, ip)
        if wait > 0:
            resp = render(
                request,
                "login.html",
                None,
                next=_safe_next(next),
                error=f"Too many failed attempts; try again in {int(wait) + 1} s.",
            )
            resp.status_code = 429
            resp.headers["Retry-After"] = str(int(wait) + 1)
            return resp
        user = request.app.state.reviews.authenticate(username, password)
        if user is None:
            limiter.failed(username, ip)
            resp = render(
                request, "login.html", None, next=_safe_next(next), error="Wrong name or password."
            )
            resp.status_code = 401
            return resp
        limiter.succeeded(username, ip)
        request.session.clear()  # new session id material: no fixation
        request.session["uid"] = user.id
        security.csrf_token(request.session)
        return RedirectResponse(_safe_next(next), status_code=303)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, _csrf: None = Depends(check_csrf)) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------ queue

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def queue_page(request: Request, user: User) -> HTMLResponse:
        params = {k: v for k, v in request.query_params.items() if v != ""}
        try:
            f = QueueFilter.model_validate(params)
        except ValidationError as exc:
            raise HTTPException(400, f"bad filter: {exc.errors()[0]['msg']}") from None
        reviews = reviews_of(request)
        page = reviews.queue(user, f)
        base = {k: v for k, v in params.items() if k != "page"}
        return render(
            request,
            "queue.html",
            user,
            page=page,
            f=f,
            facets=reviews.facets(user),
            prev_url="?" + urlencode({**base, "page": f.page - 1}) if f.page > 1 else None,
            next_url="?" + urlencode({**base, "page": f.page + 1}) if page.has_next else None,
        )

    # ------------------------------------------------------------------ one call

    @app.get("/calls/{call_id}", response_class=HTMLResponse, include_in_schema=False)
    def call_page(request: Request, call_id: str, user: User) -> HTMLResponse:
        return call_view(request, user, call_id)

    @app.get("/calls/{call_id}/audio", include_in_schema=False)
    def call_audio(request: Request, call_id: str, user: User) -> Response:
        return serve_audio(request, user, call_id)

    @app.post("/calls/{call_id}/items/{item_result_id}/override", include_in_schema=False)
    async def override(
        request: Request,
        call_id: str,
        item_result_id: int,
        user: User,
        comment: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_REVIEW, "override items")
        final = reviews_of(request).override(user, call_id, item_result_id, comment)
        notify(request, final)
        return back_to_call(call_id, f"#item-{item_result_id}")

    @app.post("/calls/{call_id}/confirm", include_in_schema=False)
    async def confirm(
        request: Request,
        call_id: str,
        user: User,
        comment: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_REVIEW, "confirm reviews")
        final = reviews_of(request).confirm(user, call_id, comment)
        notify(request, final)
        return back_to_call(call_id)

    @app.post("/calls/{call_id}/items/{item_result_id}/dispute", include_in_schema=False)
    async def dispute(
        request: Request,
        call_id: str,
        item_result_id: int,
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
        dispute_id: int,
        user: User,
        decision: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_REVIEW, "rule on disputes")
        if decision not in ("uphold", "reject"):
            raise HTTPException(400, "decision must be uphold or reject")
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
            request.session["flash"] = f"Added {added.username} ({added.role})."
        except ReviewError as exc:
            request.session["flash"] = str(exc)
        return RedirectResponse("/users", status_code=303)

    @app.post("/users/{username}/active", include_in_schema=False)
    async def set_active(
        request: Request,
        username: str,
        user: User,
        active: Annotated[str, Form()] = "0",
        _csrf: None = Depends(check_csrf),
    ) -> Response:
        require(user, CAN_MANAGE_USERS, "manage users")
        if username == user.username:
            request.session["flash"] = "You cannot deactivate yourself."
        else:
            reviews_of(request).set_active(username, active == "1")
        return RedirectResponse("/users", status_code=303)

    @app.post("/users/{username}/token", include_in_schema=False)
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

    app.include_router(api_router)
    app.include_router(privacy_router)
    app.include_router(coaching_router)
    return app


def call_view(
    request: Request, user: UserInfo, call_id: str, unredacted: Transcript | None = None
) -> HTMLResponse:
    """The call page; ``unredacted`` (reviewers/admins, see pipeline.app.privacy) replaces
    the redacted transcript's text with what was said."""
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
    return render(
        request,
        "call.html",
        user,
        info=info,
        final=final,
        risk=risk,
        utterances=transcript_view(unredacted or transcript, final, risk),
        audit=reviews.audit(user, call_id),
        disputes=disputes,
        open_items=open_items,
        redacted_audio=bool(redaction_intervals(transcript)),
        revealed=unredacted is not None,
        can_reveal=may_see and reviews.store.has_unredacted(call_id),
        reveals=reviews.store.reveals(call_id) if may_see else [],
    )


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
        headers={"Cache-Control": "private, max-age=3600", "Accept-Ranges": "bytes"},
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
