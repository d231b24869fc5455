"""Alembic environment of the inspection store.

Run programmatically by :func:`pipeline.store.db.upgrade`, which passes an open connection
in ``config.attributes["connection"]``; there is no alembic.ini. For offline SQL or ad-hoc
use, ``sqlalchemy.url`` may be set on the config instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pipeline.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
