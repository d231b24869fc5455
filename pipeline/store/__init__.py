"""The inspection store: calls, transcripts, versioned machine results and failures.

SQLAlchemy 2 models with Alembic migrations (run on open); SQLite by default, PostgreSQL by
URL. See :func:`open_store` and :class:`Store`.
"""

from pipeline.store.db import StoreError, StoreUnavailable, StoreUnwritable, dispose_engines
from pipeline.store.fingerprint import result_config, result_fingerprint
from pipeline.store.store import CALL_COLUMNS, Store, open_store

__all__ = [
    "CALL_COLUMNS",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreUnwritable",
    "dispose_engines",
    "open_store",
    "result_config",
    "result_fingerprint",
]
