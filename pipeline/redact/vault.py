"""The unredacted transcript, kept only when configured and only encrypted (Fernet).

By default the pipeline stores redacted transcripts only. ``QA_KEEP_UNREDACTED=1`` plus a
Fernet key in ``QA_PII_KEY`` (``callqa``'s :func:`generate_key`, or
``python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"``)
makes the processor also keep the transcript as transcribed, encrypted, next to the scored
call. Keeping without a key is refused. Reading it back needs the same key; the review app
shows it to reviewers and admins only, and logs every reveal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from pydantic import ValidationError

from pipeline.config import SettingsError, VaultSettings, settings_from
from pipeline.schema import Transcript

KEEP_ENV = "QA_KEEP_UNREDACTED"
KEY_ENV = "QA_PII_KEY"


class VaultError(ValueError):
    """The unredacted-transcript setting or key is wrong, or a ciphertext does not open."""


def generate_key() -> str:
    """A new random Fernet key, as the text to put in ``QA_PII_KEY``."""
    return Fernet.generate_key().decode()


def key_id(key: str | bytes) -> str:
    """A short, non-secret fingerprint of a key (stored with each ciphertext)."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw.strip()).hexdigest()[:16]


class Vault:
    """Encrypts and decrypts whole transcripts with one Fernet key."""

    def __init__(self, key: str | bytes):
        raw = key.encode() if isinstance(key, str) else key
        try:
            self._fernet = Fernet(raw.strip())
        except (ValueError, TypeError):
            raise VaultError(
                f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with pipeline.redact.vault.generate_key()"
            ) from None
        self.key_id = key_id(raw)

    def __repr__(self) -> str:
        return f"Vault(key_id={self.key_id!r})"

    def seal(self, transcript: Transcript) -> bytes:
        """The transcript's JSON document, encrypted and authenticated."""
        return self._fernet.encrypt(transcript.model_dump_json().encode())

    def open(self, token: bytes) -> Transcript:
        """The transcript sealed in ``token``; VaultError for another key or altered bytes."""
        try:
            plain = self._fernet.decrypt(bytes(token))
        except InvalidToken:
            raise VaultError(
                f"cannot decrypt the unredacted transcript with this {KEY_ENV} "
                f"(key id {self.key_id}): another key, or the stored bytes were altered"
            ) from None
        try:
            return Transcript.model_validate_json(plain)
        except ValidationError as exc:
            raise VaultError(f"decrypted document is not a transcript: {exc}") from None


def _settings(env: Mapping[str, str] | None) -> VaultSettings:
    """``QA_KEEP_UNREDACTED`` / ``QA_PII_KEY`` from the environment (or ``env``)."""
    try:
        return settings_from(env, VaultSettings)
    except SettingsError as exc:
        raise VaultError(str(exc)) from None


def vault_from_env(env: Mapping[str, str] | None = None) -> Vault | None:
    """The vault the processor keeps unredacted transcripts with, or None (the default).

    Raises VaultError when ``QA_KEEP_UNREDACTED`` is on without a valid ``QA_PII_KEY``.
    """
    settings = _settings(env)
    if not settings.keep_unredacted:
        return None
    if settings.pii_key is None:
        raise VaultError(
            f"{KEEP_ENV}=1 asks to keep unredacted transcripts, but {KEY_ENV} is not set: "
            f"refusing to store personal data unencrypted. Set {KEY_ENV} to a Fernet key "
            f"or unset {KEEP_ENV}."
        )
    return Vault(settings.pii_key.get_secret_value())


def reader_from_env(env: Mapping[str, str] | None = None) -> Vault | None:
    """A vault to read kept transcripts with (``QA_PII_KEY`` alone), or None when unset."""
    key = _settings(env).pii_key
    return Vault(key.get_secret_value()) if key is not None else None


__all__ = [
    "KEEP_ENV",
    "KEY_ENV",
    "Vault",
    "VaultError",
    "generate_key",
    "key_id",
    "reader_from_env",
    "vault_from_env",
]
