"""The store's engine and sessions: :class:`StoreBase` (a read session, a write transaction)
and how database errors become :class:`StoreUnavailable` (worth a retry),
:class:`StoreUnwritable` (no retry cures it) or :class:`StoreError`.

Every part of the store (saves, runs, reads, personal data, reviews) works through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from pipeline.store.db import WRITE_OPTION, StoreError, StoreUnavailable, StoreUnwritable


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Database exceptions as StoreUnavailable (worth a retry) or StoreError (not)."""
    try:
        yield
    except (OperationalError, PoolTimeout) as exc:
        if _unwritable(exc):
            raise StoreUnwritable(f"{what}: {_reason(exc)}") from exc
        raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(f"{what}: {_reason(exc)}") from exc
        raise StoreError(f"{what}: {_reason(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {exc}") from exc


# Errors that no retry cures: the store is read-only, full or not ours to write.
_UNWRITABLE = (
    "readonly database",
    "read-only",
    "permission denied",
    "disk is full",
    "no space left",
    "disk full",
    "unable to open database",
)


def _unwritable(exc: SQLAlchemyError) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(marker in text for marker in _UNWRITABLE)


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).strip().splitlines()[0]


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def is_value(column, value):
    """``column = value`` that also matches NULL to None."""
    return column.is_(None) if value is None else column == value


class StoreBase:
    """One engine, with a read session and a write transaction (see :func:`open_store`)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})

    def __repr__(self) -> str:
        return f"Store({safe_url(self.engine)!r})"

    @contextmanager
    def transaction(self, what: str = "cannot write to the store") -> Iterator[Session]:
        """A unit of work: a session committed when the block ends (rolled back on error).
        Database errors become :class:`StoreError` subclasses whose message starts with
        ``what``."""
        with (
            translate_errors(what),
            Session(self._write_engine, expire_on_commit=False) as s,
            s.begin(),
        ):
            yield s

    @contextmanager
    def session(self, what: str = "cannot read the store") -> Iterator[Session]:
        """A session for reading (nothing is committed); errors as in :meth:`transaction`."""
        with translate_errors(what), Session(self.engine) as s:
            yield s
