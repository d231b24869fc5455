"""The inspection store: one transaction per call, versioned machine results, never a delete.

The flow calls :func:`open_store` once per process, then per call :meth:`Store.is_scored`,
:meth:`Store.save_scored` or :meth:`Store.save_failed`. Database errors that may go away
(disconnect, lock timeout, serialisation failure) raise :class:`StoreUnavailable`; retry them.

:class:`Store` is one face over the parts, each in its module: sessions and errors
(:mod:`~pipeline.store.session`), saves (:mod:`~pipeline.store.saves`), runs and leases
(:mod:`~pipeline.store.runs`), reads (:mod:`~pipeline.store.reads`), personal data
(:mod:`~pipeline.store.unredacted`).
"""

from __future__ import annotations

from pipeline.config import load_settings
from pipeline.store.db import StoreError, StoreUnavailable, StoreUnwritable, get_engine, upgrade
from pipeline.store.llm_answers import LlmAnswers
from pipeline.store.reads import CALL_COLUMNS, Reads
from pipeline.store.runs import Runs
from pipeline.store.saves import Saves
from pipeline.store.session import safe_url, translate_errors
from pipeline.store.unredacted import Unredacted


def open_store(url: str | None = None) -> Store:
    """Open (and migrate to the latest schema) the store at ``url``.

    ``None`` uses ``load_settings().database_url`` (``QA_DATABASE_URL``; default
    ``sqlite:///var/callqa.db`` relative to the current directory).
    """
    url = url or load_settings().database_url
    engine = get_engine(url)
    with translate_errors(f"cannot open the store at {safe_url(engine)}"):
        upgrade(engine)
    return Store(engine)


class Store(Saves, Runs, Reads, Unredacted, LlmAnswers):
    """Reads and writes the inspection database behind one engine (see :func:`open_store`)."""


__all__ = [
    "CALL_COLUMNS",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreUnwritable",
    "open_store",
]
