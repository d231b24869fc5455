"""Optional webhook: POST each final score to an external QA system, signed and retried.

The body is JSON; ``X-Callqa-Signature: sha256=<hex>`` is HMAC-SHA256 of the raw body with
the shared secret (``QA_WEBHOOK_SECRET``). ``X-Callqa-Delivery`` (also sent as
``Idempotency-Key``) is the same on every retry of one event: receivers dedupe on it.

Requests never send: the store writes the event to its outbox
(:class:`pipeline.store.outbox.Outbox`) in the transaction of the change, and the request
wakes the app's one :class:`Sender` thread, which delivers due events one at a time. Connection errors, 429 and 5xx are retried with
exponential backoff (capped) for as long as it takes; other 4xx answers are final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from typing import Any, Literal

from pipeline.store import models as m
from pipeline.store.outbox import Outbox

log = logging.getLogger(__name__)

URL_ENV = "QA_WEBHOOK_URL"
SECRET_ENV = "QA_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Callqa-Signature"
Outcome = Literal["ok", "retry", "refused"]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """Posts events to ``url``; a failed attempt waits ``backoff * 2**n`` s (at most
    ``max_backoff``); :meth:`deliver` makes ``retries`` extra attempts."""

    def __init__(
        self,
        url: str,
        secret: str,
        retries: int = 4,
        backoff: float = 0.5,
        timeout: float = 5.0,
        max_backoff: float = 300.0,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        if not secret:
            raise ValueError(f"a webhook needs a secret ({SECRET_ENV})")
        self.url, self.secret = url, secret
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.max_backoff = max_backoff

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return min(self.max_backoff, self.backoff * 2 ** min(attempt, 30))

    def attempt(self, event: str, payload: dict[str, Any], delivery_id: str) -> tuple[Outcome, str]:  # fmt: skip
        """One signed POST; ("ok" | "retry" | "refused", what happened)."""
        body = json.dumps({"event": event, **payload}, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            "X-Callqa-Event": event,
            "X-Callqa-Delivery": delivery_id,
            "Idempotency-Key": delivery_id,
        }
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                if 200 <= resp.status < 300:
                    return "ok", f"HTTP {resp.status}"
                return "retry", f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            if exc.code != 429 and exc.code < 500:
                return "refused", f"HTTP {exc.code}"
            return "retry", f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return "retry", str(exc)

    def deliver(self, event: str, payload: dict[str, Any]) -> bool:
        """POST synchronously with retries (no outbox); True when the receiver answered 2xx."""
        delivery_id = uuid.uuid4().hex
        for n in range(self.retries + 1):
            outcome, what = self.attempt(event, payload, delivery_id)
            if outcome != "retry":
                if outcome == "refused":
                    log.warning("webhook %s refused %s: %s", self.url, event, what)
                return outcome == "ok"
            log.info("webhook %s attempt %d failed: %s", self.url, n + 1, what)
            if n < self.retries:
                time.sleep(self.wait(n))
        log.warning("webhook %s gave up on %s after %d attempts", self.url, event, self.retries + 1)
        return False


class Sender:
    """The one thread that delivers the outbox of an app process to its webhook.

    :meth:`wake` (called by requests) only wakes it. It claims due events in small
    batches and sends them one at a time, so a burst of changes costs no threads; events
    left by a stopped process are sent when the next one starts."""

    BATCH = 20
    IDLE_S = 30.0  # looks at the outbox at least this often (events from other processes)

    def __init__(self, hook: Webhook, outbox: Outbox):
        self.hook, self.outbox = hook, outbox
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # long enough for a whole batch against a receiver that times out every time
        self.lease = timedelta(seconds=self.BATCH * (hook.timeout + 1) + 30)

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="callqa-webhook", daemon=True)  # fmt: skip
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """Look at the outbox now (a request wrote an event to it)."""
        self.start()
        self._wake.set()

    def drain(self) -> int:
        """Send every event due now; how many were settled (delivered or refused)."""
        settled = 0
        while not self._stop.is_set():
            batch = self.outbox.claim(self.BATCH, self.lease)
            if not batch:
                return settled
            for ev in batch:
                outcome, what = self.hook.attempt(ev.event, ev.payload, ev.delivery_id)
                if outcome == "ok":
                    self.outbox.delivered(ev.id)
                    settled += 1
                elif outcome == "refused":
                    log.warning("webhook %s refused %s: %s", self.hook.url, ev.delivery_id, what)
                    self.outbox.refused(ev.id, what)
                    settled += 1
                else:
                    log.info("webhook %s: %s failed (%s)", self.hook.url, ev.delivery_id, what)
                    self.outbox.retry(ev.id, what, timedelta(seconds=self.hook.wait(ev.attempts)))  # fmt: skip
        return settled

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
                due = self.outbox.next_due()
            except Exception:  # the store is down: try again later, never die
                log.exception("webhook sender: cannot read the outbox")
                due = None
            wait = self.IDLE_S
            if due is not None:
                wait = min(wait, max(0.0, (due - m.utcnow()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()


def webhook_from_env() -> Webhook | None:
    from pipeline.config import AppSettings, settings_from

    app = settings_from(model=AppSettings)
    if app.webhook_url is None:
        return None
    return Webhook(
        app.webhook_url, app.webhook_secret.get_secret_value() if app.webhook_secret else ""
    )
