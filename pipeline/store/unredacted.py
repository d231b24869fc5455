"""Personal data kept aside: the encrypted unredacted transcript of a call's current result,
its decryption with the right key, and the audit of every reveal."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline import schema
from pipeline.store import models as m
from pipeline.store.db import StoreError
from pipeline.store.session import StoreBase


class Unredacted(StoreBase):
    """The unredacted transcripts (encrypted) and their reveals."""

    def _current_unredacted(
        self, s: Session, call_id: str
    ) -> tuple[m.Call, m.Result, m.UnredactedTranscript] | None:
        row = s.execute(
            select(m.Call, m.Result, m.UnredactedTranscript)
            .join(m.Result, m.Call.current_result_id == m.Result.id)
            .join(
                m.UnredactedTranscript,
                m.UnredactedTranscript.transcript_id == m.Result.transcript_id,
            )
            .where(m.Call.call_id == call_id)
        ).one_or_none()
        return tuple(row) if row is not None else None

    def has_unredacted(self, call_id: str) -> bool:
        """True when an encrypted unredacted transcript is kept for the call's current result."""
        with self.session(f"cannot read call {call_id!r}") as s:
            return self._current_unredacted(s, call_id) is not None

    def get_unredacted(self, call_id: str, key: Any) -> schema.Transcript | None:
        """The unredacted transcript behind the call's current result, decrypted with ``key``
        (a Fernet key or a :class:`~pipeline.redact.vault.Vault`); None when none was kept.

        Raises :class:`~pipeline.redact.vault.VaultError` for a wrong key. Callers that show
        it to a person record that with :meth:`record_reveal`.
        """
        from pipeline.redact.vault import Vault, VaultError

        vault = key if isinstance(key, Vault) else Vault(key)
        with self.session(f"cannot read call {call_id!r}") as s:
            found = self._current_unredacted(s, call_id)
            if found is None:
                return None
            kept = found[2]
            token, stored_key = bytes(kept.ciphertext), kept.key_id
        if stored_key not in ("unknown", vault.key_id):
            raise VaultError(
                f"the unredacted transcript of call {call_id!r} was encrypted with key id "
                f"{stored_key}, not with this QA_PII_KEY (key id {vault.key_id})"
            )
        return vault.open(token)

    def record_reveal(self, call_id: str, user_id: int) -> None:
        """Audit one reveal of the call's unredacted transcript: who, when, which call."""
        with self.transaction(f"cannot record a reveal of call {call_id!r}") as s:
            found = self._current_unredacted(s, call_id)
            if found is None:
                raise StoreError(f"no unredacted transcript is kept for call {call_id!r}")
            call, res, _ = found
            s.add(m.PiiReveal(call_pk=call.id, transcript_id=res.transcript_id, user_id=user_id))

    def reveals(self, call_id: str) -> list[dict[str, Any]]:
        """Every reveal of the call's personal data, oldest first (username, role, when)."""
        with self.session(f"cannot read call {call_id!r}") as s:
            rows = s.execute(
                select(m.PiiReveal, m.User)
                .join(m.Call, m.Call.id == m.PiiReveal.call_pk)
                .join(m.User, m.User.id == m.PiiReveal.user_id)
                .where(m.Call.call_id == call_id)
                .order_by(m.PiiReveal.id)
            )
            return [
                {
                    "user": u.username,
                    "role": u.role,
                    "transcript_id": r.transcript_id,
                    "created_at": m.iso(r.created_at),
                }
                for r, u in rows
            ]
