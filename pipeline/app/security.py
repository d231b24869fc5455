"""Secrets, CSRF tokens, login throttling, response headers and ids in paths."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import JSONResponse, PlainTextResponse

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
    """Password checks throttled in the store (so it holds across workers and restarts):
    every route that checks a password goes through :meth:`verify`.

    - An account *from one address* is refused after ``max_failures`` failed checks in
      ``window`` seconds (since the account's last success).
    - An address is refused after ``max_ip_failures`` failed checks in the window under
      any names (password spraying).
    - An account is never refused from another address, whatever its failures elsewhere
      (else anyone could lock anyone out): from ``max_failures`` failures on, each of its
      checks waits ``slow_step * 2**k`` s (at most ``max_slow``), ``k`` the failures past
      the limit.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 300.0,
        max_ip_failures: int = 20,
        slow_step: float = 0.5,
        max_slow: float = 4.0,
    ):
        self.max_failures = max_failures
        self.window = window
        self.max_ip_failures = max_ip_failures
        self.slow_step, self.max_slow = slow_step, max_slow

    def check(self, reviews, username: str, ip: str) -> tuple[float, float]:
        """(seconds until this address may try this account again, 0: now; seconds the
        check is slowed down by)."""
        window = timedelta(seconds=self.window)
        seen = reviews.login_failures(username, ip, window)
        now = datetime.now(UTC)
        waits = [0.0]
        if len(seen.pair) >= self.max_failures:
            waits.append((seen.pair[-self.max_failures] + window - now).total_seconds())
        if len(seen.address) >= self.max_ip_failures:
            waits.append((seen.address[-self.max_ip_failures] + window - now).total_seconds())
        past = len(seen.account) - self.max_failures
        slow = 0.0 if past < 0 else min(self.max_slow, self.slow_step * 2 ** min(past, 16))
        return max(waits), slow

    async def verify(self, reviews, username: str, password: str, ip: str) -> tuple[Any, float]:
        """(the user these credentials are for, else None; seconds to wait when the check
        was refused, else 0). Failures and successes are recorded."""
        wait, slow = self.check(reviews, username, ip)
        if wait > 0:
            return None, wait
        if slow:
            await asyncio.sleep(slow)
        user = await run_in_threadpool(reviews.authenticate, username, password)
        reviews.record_login(username, ip, ok=user is not None)
        return user, 0.0


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


def trusted_proxies(value: str) -> str:
    """``QA_TRUSTED_PROXIES`` checked: comma-separated addresses or CIDR ranges (``*``: any,
    only where nothing but the proxy can reach the app); ValueError names a bad entry."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if not entries:
        raise ValueError("QA_TRUSTED_PROXIES is empty; unset it when no proxy is in front")
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(
                f"QA_TRUSTED_PROXIES={value!r}: {entry!r} is not an address or CIDR range"
            ) from None
    return ",".join(entries)


# --------------------------------------------------------------------------- request size

MAX_BODY = 2 * 1024 * 1024  # bytes; the largest form or JSON body the app reads


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413 before any route
    parses it (a declared Content-Length at once; a chunked body once it grows past it,
    buffered up to the limit and replayed to the app otherwise)."""

    def __init__(self, app, max_bytes: int = MAX_BODY):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                return await self._too_large(scope, receive, send)
            return await self.app(scope, receive, send)
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            return await self.app(scope, receive, send)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send) -> None:
        limit = f"request body over {self.max_bytes} bytes"
        if scope.get("path", "").startswith("/api/"):
            response = JSONResponse({"detail": limit}, status_code=413)
        else:
            response = PlainTextResponse(limit, status_code=413)
        await response(scope, receive, send)


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
