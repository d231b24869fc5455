"""Secrets, CSRF tokens and the login rate limit of the review app."""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections import defaultdict, deque
from pathlib import Path

SECRET_ENV = "QA_SECRET_KEY"
SECRET_FILE = "secret_key"


def secret_key(var_dir: Path) -> str:
    """``QA_SECRET_KEY``, else a random key generated once and kept in ``var_dir`` (0600)."""
    env = os.environ.get(SECRET_ENV, "").strip()
    if env:
        return env
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
    """At most ``max_failures`` failed logins per (username, client IP) in ``window`` seconds."""

    def __init__(self, max_failures: int = 5, window: float = 300.0):
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _prune(self, key: tuple[str, str], now: float) -> deque[float]:
        hits = self._failures[key]
        while hits and now - hits[0] > self.window:
            hits.popleft()
        return hits

    def retry_after(self, username: str, ip: str) -> float:
        """Seconds until a login may be tried again (0: allowed now)."""
        key, now = (username.strip().lower(), ip), time.monotonic()
        with self._lock:
            hits = self._prune(key, now)
            if len(hits) < self.max_failures:
                return 0.0
            return max(0.0, self.window - (now - hits[0]))

    def failed(self, username: str, ip: str) -> None:
        with self._lock:
            self._failures[(username.strip().lower(), ip)].append(time.monotonic())

    def succeeded(self, username: str, ip: str) -> None:
        with self._lock:
            self._failures.pop((username.strip().lower(), ip), None)
