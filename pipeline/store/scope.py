"""What the review queries share: whose calls a query may return (:class:`Scope`), the
errors of a refused review action, and the size rule for typed text.

The store enforces data integrity; who may do what is the app's business
(:mod:`pipeline.app.permissions`), which hands the store a :class:`Scope` per request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store import models as m
from pipeline.store.db import StoreError

MAX_TEXT = 2000  # characters of a comment, dispute reason or ruling comment (web and API)
NO_AGENT = "\x00no-agent"  # matches no call: an agent scope without an agent id


class ReviewError(StoreError):
    """A review action that cannot be done (unknown item, nothing to rule on...)."""


class NotFound(ReviewError):
    """The call/item/dispute does not exist, or is outside the scope (same answer)."""


class Scope(BaseModel):
    """Who acts (``user_id``, recorded on review actions) and which calls they reach: every
    call (``all_calls``), the calls of their ``teams`` (a team lead), or only those whose
    ``agent_id`` is theirs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: int
    agent_id: str | None = None
    teams: tuple[str, ...] = ()
    all_calls: bool = False

    def calls(self) -> Any:
        """The condition on :class:`~pipeline.store.models.Call` rows in this scope (None:
        no condition). Every query that returns calls or figures of calls applies it."""
        return self.on(m.Call)

    def on(self, table: Any) -> Any:
        """The same condition on any table with the call's ``team`` and ``agent_id`` columns
        (calls, and the dashboard's facts and their sums: :mod:`pipeline.store.facts`)."""
        if self.all_calls:
            return None
        if self.teams:
            return table.team.in_(self.teams)
        return table.agent_id == (self.agent_id or NO_AGENT)

    def reaches(self, call: m.Call) -> bool:
        """True when the loaded ``call`` is in this scope (the same rule as :meth:`calls`)."""
        if self.all_calls:
            return True
        if self.teams:
            return call.team in self.teams
        return bool(self.agent_id) and call.agent_id == self.agent_id


def visible_call(s: Session, scope: Scope, call_id: str) -> m.Call:
    """The scored call ``call_id`` when it is in ``scope``, else :class:`NotFound` (the same
    answer either way: no existence leak)."""
    call = s.scalar(select(m.Call).where(m.Call.call_id == call_id))
    if call is None or call.current_result_id is None or not scope.reaches(call):
        raise NotFound(f"no scored call {call_id!r}")
    return call


def bounded_text(value: str | None, what: str, required: bool = False) -> str | None:
    """``value`` stripped; ReviewError when longer than :data:`MAX_TEXT` (or empty and
    ``required``). The one size rule for comments and reasons, web and API alike."""
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        raise ReviewError(f"{what} is {len(text)} characters long; at most {MAX_TEXT} are kept")
    if required and not text:
        raise ReviewError(f"{what} must not be empty")
    return text or None
