"""Secrets, CSRF tokens, login throttling, response headers and ids in paths."""

from __future__ import annotations

import hmac
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor

SECRET_ENV = "QA_SECRET_KEY"
SECRET_FILE = "secret_key"


def secret_key(var_dir: Path) -> str:
    """``QA_SECRET_KEY``, else a random key generated once and kept in ``var_dir`` (0600)."""
    from pipeline.config import AppSettings, settings_from

    configured = settings_from(model=AppSettings).secret_key
    if configured is not None:
        return configured.get_secret_value()
    path = Path(var_dir) / SECRET_FILE
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # fail if a racer won
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def csrf_token(session: dict) -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(session: dict, submitted: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and submitted) and hmac.compare_digest(expected, submitted)


class LoginLimiter:
    """Login throttling kept in the store (so it holds across workers and restarts).

    An account is locked after ``max_failures`` failed logins in ``window`` seconds (from
    any address, since its last success); an address is throttled after
    ``max_ip_failures`` failed logins in the window under any names (password spraying).
    """

    def __init__(self, max_failures: int = 5, window: float = 300.0, max_ip_failures: int = 20):
        self.max_failures = max_failures
        self.window = window
        self.max_ip_failures = max_ip_failures

    def retry_after(self, reviews, username: str, ip: str) -> float:
        """Seconds until a login may be tried again (0: allowed now)."""
        window = timedelta(seconds=self.window)
        by_user, by_ip = reviews.login_failures(username, ip, window)
        now = datetime.now(UTC)
        waits = [0.0]
        if len(by_user) >= self.max_failures:
            waits.append((by_user[-self.max_failures] + window - now).total_seconds())
        if len(by_ip) >= self.max_ip_failures:
            waits.append((by_ip[-self.max_ip_failures] + window - now).total_seconds())
        return max(waits)

    def failed(self, reviews, username: str, ip: str) -> None:
        reviews.record_login(username, ip, ok=False)

    def succeeded(self, reviews, username: str, ip: str) -> None:
        reviews.record_login(username, ip, ok=True)


# --------------------------------------------------------------------------- response headers

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Swagger UI sets inline styles; still no inline script and no other origin.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
STATIC_CACHE = "public, max-age=3600"


def security_headers(path: str, headers) -> None:
    """Headers every response gets. Anything that is not a static asset and sets no
    Cache-Control of its own (pages with call content, JSON) is ``no-store``."""
    headers.setdefault("Content-Security-Policy", DOCS_CSP if path.startswith("/api/docs") else CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if "cache-control" not in headers:
        static = path.startswith(("/static/", "/api/docs/assets/"))
        headers["Cache-Control"] = STATIC_CACHE if static else "no-store"


# --------------------------------------------------------------------------- ids in paths


class PathIds:
    """ASGI middleware: a ``%2F`` inside a path segment stays part of that segment.

    Servers decode the whole path before routing, so ``/calls/a%2Fb`` would route as
    ``/calls/a/b``. Here each segment of the raw path is decoded on its own and ``/`` and
    ``%`` inside it are re-escaped; the ``id`` path convertor (:class:`IdConvertor`) turns
    them back, so call and user ids may contain any character.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and scope.get("raw_path"):
            raw = scope["raw_path"].split(b"?", 1)[0].decode("latin-1")
            segments = [unquote(seg).replace("%", "%25").replace("/", "%2F") for seg in raw.split("/")]  # fmt: skip
            scope = {**scope, "path": "/".join(segments)}
        await self.app(scope, receive, send)


class IdConvertor(Convertor):
    """``{call_id:id}``: one path segment, with ``%25``/``%2F`` (see :class:`PathIds`) undone."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value.replace("%2F", "/").replace("%25", "%")

    def to_string(self, value: str) -> str:
        return quote(str(value), safe="")


register_url_convertor("id", IdConvertor())


def url_id(value: str | None) -> str:
    """An id as one URL path segment (``/`` and everything else escaped)."""
    return quote(str(value or ""), safe="")
