"""The webhook outbox: events written to the store in the transaction of the change that
caused them (:class:`pipeline.store.reviews.ReviewActions` does it when ``events`` is set),
and delivered at least once by one sender per app process (:mod:`pipeline.app.webhook`).

An event repeats nothing: one whose payload is the same as the last one queued for its
subject (a call) is not queued again. Each row carries a ``delivery_id``, the idempotency
key the receiver may dedupe on; it is the same on every retry. Rows are claimed with a
conditional update, so two processes on one store never send a row at the same moment.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pipeline.schema import canonical_sha256
from pipeline.store import models as m

if TYPE_CHECKING:
    from pipeline.store.session import StoreBase

KEEP_DELIVERED = timedelta(days=7)  # delivered or refused rows are kept this long


class OutboxEvent(BaseModel):
    """One event to send."""

    id: int
    delivery_id: str
    event: str
    subject: str
    payload: dict[str, Any]
    attempts: int


class Outbox:
    """Queue, claim and settle webhook events in ``store``."""

    def __init__(self, store: StoreBase):
        self.store = store

    def enqueue(self, event: str, subject: str, payload: dict[str, Any]) -> str | None:
        """:meth:`add` in a transaction of its own."""
        with self.store.transaction("cannot queue a webhook event") as s:
            return self.add(s, event, subject, payload)

    @staticmethod
    def add(s: Session, event: str, subject: str, payload: dict[str, Any]) -> str | None:
        """Queue ``payload`` for ``subject`` in the transaction ``s`` (the change's own);
        its delivery id, or None when it says what the subject's last event already said
        (nothing changed)."""
        digest = canonical_sha256(payload)
        Box = m.WebhookOutbox  # noqa: N806
        last = s.scalar(
            select(Box.digest).where(Box.event == event, Box.subject == subject[:255])
            .order_by(Box.id.desc()).limit(1)
        )  # fmt: skip
        if last == digest:
            return None
        delivery_id = uuid.uuid4().hex
        s.add(
            Box(
                delivery_id=delivery_id,
                event=event,
                subject=subject[:255],
                digest=digest,
                payload=payload,
                attempts=0,
                next_attempt_at=m.utcnow(),
            )
        )
        return delivery_id

    def claim(self, limit: int, lease: timedelta) -> list[OutboxEvent]:
        """Up to ``limit`` due events, oldest first, each held for ``lease`` (another
        sender skips it until then; a sender that dies lets it fall due again)."""
        Box = m.WebhookOutbox  # noqa: N806
        now = m.utcnow()
        open_ = (Box.delivered_at.is_(None), Box.refused_at.is_(None))
        with self.store.session("cannot read the webhook outbox") as s:
            due = s.execute(
                select(Box.id, Box.next_attempt_at).where(*open_, Box.next_attempt_at <= now)
                .order_by(Box.id).limit(limit)
            ).all()  # fmt: skip
        claimed: list[OutboxEvent] = []
        with self.store.transaction("cannot claim webhook events") as s:
            for row_id, seen in due:
                taken = s.execute(
                    update(Box).where(Box.id == row_id, Box.next_attempt_at == seen, *open_)
                    .values(next_attempt_at=now + lease)
                ).rowcount  # fmt: skip
                if taken:
                    row = s.get(Box, row_id)
                    claimed.append(
                        OutboxEvent(
                            id=row.id,
                            delivery_id=row.delivery_id,
                            event=row.event,
                            subject=row.subject,
                            payload=dict(row.payload),
                            attempts=row.attempts,
                        )
                    )
        return claimed

    def delivered(self, event_id: int) -> None:
        """The receiver took it (2xx); also drops rows settled long ago."""
        Box = m.WebhookOutbox  # noqa: N806
        now = m.utcnow()
        with self.store.transaction("cannot update the webhook outbox") as s:
            s.execute(
                update(Box).where(Box.id == event_id)
                .values(delivered_at=now, attempts=Box.attempts + 1, last_error=None)
            )  # fmt: skip
            old = now - KEEP_DELIVERED
            s.execute(delete(Box).where(Box.delivered_at < old))
            s.execute(delete(Box).where(Box.refused_at < old))

    def retry(self, event_id: int, error: str, delay: timedelta) -> None:
        """It failed in a way worth retrying (down, 429, 5xx): due again after ``delay``."""
        Box = m.WebhookOutbox  # noqa: N806
        with self.store.transaction("cannot update the webhook outbox") as s:
            s.execute(
                update(Box).where(Box.id == event_id)
                .values(attempts=Box.attempts + 1, next_attempt_at=m.utcnow() + delay, last_error=error[:500])
            )  # fmt: skip

    def refused(self, event_id: int, error: str) -> None:
        """The receiver refused it for good (a 4xx other than 429): never sent again."""
        Box = m.WebhookOutbox  # noqa: N806
        with self.store.transaction("cannot update the webhook outbox") as s:
            s.execute(
                update(Box).where(Box.id == event_id)
                .values(attempts=Box.attempts + 1, refused_at=m.utcnow(), last_error=error[:500])
            )  # fmt: skip

    def next_due(self) -> datetime | None:
        """When the earliest open event falls due (None: nothing waits)."""
        Box = m.WebhookOutbox  # noqa: N806
        with self.store.session("cannot read the webhook outbox") as s:
            at = s.scalar(
                select(func.min(Box.next_attempt_at))
                .where(Box.delivered_at.is_(None), Box.refused_at.is_(None))
            )  # fmt: skip
        return m.aware(at) if at is not None else None

    def events(self, subject: str | None = None) -> list[dict[str, Any]]:
        """Every kept row (oldest first), for inspection and tests."""
        Box = m.WebhookOutbox  # noqa: N806
        q = select(Box).order_by(Box.id)
        if subject is not None:
            q = q.where(Box.subject == subject)
        with self.store.session("cannot read the webhook outbox") as s:
            return [{c.key: getattr(r, c.key) for c in Box.__table__.columns} for r in s.scalars(q)]
