"""The review web app: server-rendered pages (Jinja2) and a JSON API over :class:`ReviewStore`.

Every page, form and file checks the signed-in user on the server (:mod:`.deps`, role tables
in :mod:`.permissions`): agents only reach their own calls (others answer 404, as if
absent), only reviewers/admins override and rule, only agents dispute, only admins manage
users. Every form carries the session's CSRF token. The routes live in :mod:`.routers`, one
module per resource; :func:`create_app` only assembles them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from pipeline import __version__
from pipeline.app import errors, i18n, security
from pipeline.app.deps import HERE, templates
from pipeline.app.routers import (
    account,
    api,
    auth,
    calibration,
    calls,
    coaching,
    dashboard,
    disputes,
    docs,
    failed,
    privacy,
    queue,
    search,
    system,
    users,
)
from pipeline.app.webhook import Sender, Webhook, webhook_from_env
from pipeline.config import RUBRICS_DIR, enforce_offline
from pipeline.store import open_store
from pipeline.store.outbox import Outbox
from pipeline.store.review import ReviewStore

SESSION_MAX_AGE = 12 * 3600  # one working day (the server-side session expires with it)
ROUTERS = (
    system, auth, queue, dashboard, calls, disputes, calibration, users, api, privacy, coaching,
    account, search, failed, docs,
)  # fmt: skip


async def _headers(request: Request, call_next):
    i18n.activate(i18n.choose(None, request.headers.get("accept-language")))
    response = await call_next(request)
    security.security_headers(request.url.path, response.headers)
    return response


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    if app.state.sender is not None:
        app.state.sender.stop()


def create_app(
    db_url: str | None = None,
    *,
    var_dir: str | Path = "var",
    secret_key: str | None = None,
    webhook: Webhook | None = None,
    https_only: bool = False,
    login_limiter: security.LoginLimiter | None = None,
    rubrics_dir: str | Path | None = None,
) -> FastAPI:
    """The review app on the store at ``db_url`` (default: the configured database).

    ``var_dir`` holds the generated cookie key (unless ``QA_SECRET_KEY``/``secret_key``) and
    the audio cache. ``webhook`` defaults to ``QA_WEBHOOK_URL``/``QA_WEBHOOK_SECRET``; its
    events go through the store's outbox and one sender thread (:mod:`.webhook`).
    ``rubrics_dir``: where the calibration page finds rubric ``<id>.yaml`` files (default:
    the shipped ``rubrics/``).
    """
    enforce_offline()
    var_dir = Path(var_dir)
    app = FastAPI(
        title="callqa review API",
        version=__version__,
        description="Auto-scored calls, final scores with human rulings, reviews, disputes.",
        docs_url=None,  # /api/docs: pipeline.app.routers.docs (assets from a package)
        redoc_url=None,
        lifespan=_lifespan,
    )
    app.state.reviews = ReviewStore(open_store(db_url))
    app.state.var_dir = var_dir
    app.state.audio_cache = var_dir / "audio_cache"
    # the rubric files the calibration page reads and a rubric owner's acceptance rewrites
    app.state.rubrics_dir = Path(rubrics_dir) if rubrics_dir is not None else RUBRICS_DIR
    app.state.webhook = webhook if webhook is not None else webhook_from_env()
    app.state.sender = None
    if app.state.webhook is not None:  # one sender thread for the outbox, started now
        app.state.reviews.events = Outbox(app.state.reviews.store)
        app.state.sender = Sender(app.state.webhook, app.state.reviews.events)
        app.state.sender.start()  # sends what an earlier process left undelivered
    app.state.limiter = login_limiter or security.LoginLimiter()
    app.state.templates = templates()
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key or security.secret_key(var_dir),
        session_cookie="callqa_session",
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=https_only,
    )
    app.add_middleware(security.BodyLimit)  # 413 before anything reads an oversized body
    app.middleware("http")(_headers)
    app.add_middleware(security.PathIds)  # outermost: routes see ids with their own "/"
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    errors.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    return app
