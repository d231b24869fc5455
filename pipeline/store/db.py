"""Engines (one per URL per process) and programmatic Alembic migrations.

SQLite: WAL, a busy timeout and foreign keys on every connection; write transactions take
the write lock up front (``BEGIN IMMEDIATE``) so concurrent writers queue instead of failing.
PostgreSQL: pre-pinged pooled connections; migrations run under an advisory lock.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# pg_advisory_lock key for migrations: the bytes of "callqa" as an int.
PG_MIGRATION_LOCK = 0x63616C6C7161
WRITE_OPTION = "callqa_write"

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_lock = threading.Lock()


class StoreError(RuntimeError):
    """The store cannot do what was asked (bad URL, constraint violated, ...)."""


class StoreUnavailable(StoreError):
    """The database is unreachable or busy for now; the caller may retry with backoff."""


class StoreUnwritable(StoreError):
    """The database refuses writes (read-only, full, no permission): retrying will not help."""


def _reset_after_fork() -> None:
    # Pooled connections must not be shared with a forked child: forget them there.
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def get_engine(url: str) -> Engine:
    """The process-wide engine of ``url`` (created, configured and cached on first use)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = _create_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every cached engine's connections (tests, and before dropping a database)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _migrated.clear()


def _create_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # psycopg 3 is what the project installs
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True, future=True)
    raise StoreError(f"unsupported database {backend!r} in {url!r}; valid: sqlite, postgresql")


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    database = parsed.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy (below) emit BEGIN itself, instead of pysqlite's late implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config without alembic.ini, usable from an installed package.

    For development: ``alembic_config()`` plus ``sqlalchemy.url`` set, then
    ``alembic.command.revision(cfg, autogenerate=True, message=...)``.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine) -> None:
    """``alembic upgrade head`` on ``engine``; idempotent and safe from several processes."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _migrated:
        return
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            conn.commit()
            try:
                command.upgrade(alembic_config(conn), "head")
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                conn.commit()
    else:
        # BEGIN IMMEDIATE holds SQLite's write lock from the version check to the commit;
        # a lock file beside the database also serialises processes that open a fresh file
        # at the same moment (seen once under load: two migrated it together).
        writer = engine.execution_options(**{WRITE_OPTION: True})
        with _sqlite_migration_lock(engine.url.database), writer.connect() as conn:
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
    _migrated.add(key)


@contextlib.contextmanager
def _sqlite_migration_lock(database: str | None):
    """An exclusive ``flock`` on ``<database>.migrate-lock`` (file databases, POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: SQLite's own lock only
        fcntl = None
    if fcntl is None or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
