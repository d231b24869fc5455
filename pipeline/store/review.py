"""The review workflow's data access, one object per store: :class:`ReviewStore` joins

- :mod:`pipeline.store.accounts`: users, password hashes, API tokens, sessions, preferences;
- :mod:`pipeline.store.reviews`: final scores, overrides, confirmations, disputes, rulings;
- :mod:`pipeline.store.queries`: the queue, its menus, failed calls, search, calibration;
- :mod:`pipeline.store.dashboard`: the dashboard's KPIs, trends, items and rankings.

Calls are reached through a :class:`Scope` (the app derives it from the user's role, see
:mod:`pipeline.app.permissions`); the store checks data, not roles.

>>> reviews = ReviewStore(open_store(url))
>>> user = reviews.add_user("li", "secret12", "reviewer")
>>> scope = Scope(user_id=user.id, all_calls=True)
>>> page = reviews.queue(scope, QueueFilter(risk_level="high"))
>>> final = reviews.override(scope, "20261101-000123", item_result_id=17, passed=True)
"""

from __future__ import annotations

from argon2 import PasswordHasher

from pipeline.store.accounts import (
    HASHER,
    PAGE_SIZES,
    Accounts,
    SavedFilterRow,
    UserInfo,
    UserPrefs,
    token_sha256,
)
from pipeline.store.dashboard import DashboardQueries
from pipeline.store.queries import (
    MAX_PAGE_SIZE,
    CalibrationRow,
    CallInfo,
    FailedCall,
    QueueFilter,
    QueuePage,
    QueueQueries,
    QueueRow,
)
from pipeline.store.reviews import AuditRow, DisputeRow, FinalItem, FinalScore, ReviewActions
from pipeline.store.scope import MAX_TEXT, NotFound, ReviewError, Scope
from pipeline.store.store import Store


class ReviewStore(Accounts, ReviewActions, QueueQueries, DashboardQueries):
    """Review data access behind a :class:`~pipeline.store.Store` (same engine)."""

    def __init__(self, store: Store, hasher: PasswordHasher | None = None):
        self.store = store
        self._hasher = hasher or HASHER  # cheaper parameters only in tests
        self._search = None
        self.events = None  # an Outbox: changed final scores become webhook events


__all__ = [
    "MAX_PAGE_SIZE",
    "MAX_TEXT",
    "PAGE_SIZES",
    "AuditRow",
    "CalibrationRow",
    "CallInfo",
    "DisputeRow",
    "FailedCall",
    "FinalItem",
    "FinalScore",
    "NotFound",
    "QueueFilter",
    "QueuePage",
    "QueueRow",
    "ReviewError",
    "ReviewStore",
    "SavedFilterRow",
    "Scope",
    "UserInfo",
    "UserPrefs",
    "token_sha256",
]
