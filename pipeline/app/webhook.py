"""Optional webhook: POST each final score to an external QA system, signed and retried.

The body is JSON; ``X-Callqa-Signature: sha256=<hex>`` is HMAC-SHA256 of the raw body with
the shared secret (``QA_WEBHOOK_SECRET``). Connection errors, 429 and 5xx are retried with
exponential backoff; other 4xx answers are final.
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
from typing import Any

log = logging.getLogger(__name__)

URL_ENV = "QA_WEBHOOK_URL"
SECRET_ENV = "QA_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Callqa-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """Delivers events to ``url``; ``retries`` extra attempts, waits ``backoff * 2**n`` s."""

    def __init__(
        self, url: str, secret: str, retries: int = 4, backoff: float = 0.5, timeout: float = 5.0
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL must be http(s): {url!r}")
        if not secret:
            raise ValueError(f"a webhook needs a secret ({SECRET_ENV})")
        self.url, self.secret = url, secret
        self.retries, self.backoff, self.timeout = retries, backoff, timeout

    def deliver(self, event: str, payload: dict[str, Any]) -> bool:
        """POST synchronously with retries; True when the receiver answered 2xx."""
        body = json.dumps({"event": event, **payload}, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            "X-Callqa-Event": event,
            "X-Callqa-Delivery": uuid.uuid4().hex,  # same id on every retry: dedupe on it
        }
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    if 200 <= resp.status < 300:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:
                    log.warning("webhook %s refused %s: HTTP %s", self.url, event, exc.code)
                    return False
            except (urllib.error.URLError, OSError) as exc:
                log.info("webhook %s attempt %d failed: %s", self.url, attempt + 1, exc)
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        log.warning("webhook %s gave up on %s after %d attempts", self.url, event, self.retries + 1)
        return False

    def send(self, event: str, payload: dict[str, Any]) -> threading.Thread:
        """Deliver in a background thread (the request that caused it does not wait)."""
        t = threading.Thread(target=self.deliver, args=(event, payload), daemon=True)
        t.start()
        return t


def webhook_from_env() -> Webhook | None:
    from pipeline.config import AppSettings, settings_from

    app = settings_from(model=AppSettings)
    if app.webhook_url is None:
        return None
    return Webhook(
        app.webhook_url, app.webhook_secret.get_secret_value() if app.webhook_secret else ""
    )
