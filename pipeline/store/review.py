"""Review workflow on the inspection store: accounts, the queue, overrides, disputes, rulings.

The machine result is never changed. Every human action is an append-only
``review_actions`` row (who, when, item verdict before and after, comment); the final score
is the machine result with those verdicts applied, and ``call_reviews`` caches it (with the
call's review status) for the queue. Visibility is enforced here as well as in the app: an
agent only ever gets calls whose ``agent_id`` is their own.

>>> reviews = ReviewStore(open_store(url))
>>> user = reviews.add_user("li", "secret", "reviewer")
>>> page = reviews.queue(user, QueueFilter(risk_level="high"))
>>> final = reviews.override(user, "20261101-000123", item_result_id=17, passed=True, comment="said it")
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field
from sqlalchemy import and_, case, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from pipeline.store import models as m
from pipeline.store.db import StoreError
from pipeline.store.store import Store

Role = Literal["admin", "reviewer", "trainer", "agent"]
ReviewStatus = Literal["auto", "reviewed", "disputed"]

# Who may do what (the app checks the same table before it calls in).
CAN_SEE_ALL: frozenset[str] = frozenset({"admin", "reviewer", "trainer"})
CAN_REVIEW: frozenset[str] = frozenset({"admin", "reviewer"})
CAN_DISPUTE: frozenset[str] = frozenset({"agent"})
CAN_CALIBRATE: frozenset[str] = frozenset({"admin", "reviewer", "trainer"})
CAN_MANAGE_USERS: frozenset[str] = frozenset({"admin"})
# Roles that hear redacted spans of the audio unmasked.
CAN_HEAR_REDACTED: frozenset[str] = frozenset({"admin", "reviewer"})

SORTS = ("priority", "newest", "oldest", "score")
MAX_PAGE_SIZE = 200
PAGE_SIZES = (20, 50, 100, 200)
MAX_PAGE = 1_000_000  # deeper pages are refused (400), not turned into huge OFFSETs
MAX_TEXT = 2000  # characters of a comment, dispute reason or ruling comment (web and API)
SESSION_TTL = timedelta(hours=12)  # one working day
SESSION_TOUCH = timedelta(minutes=5)  # last_seen is written at most this often
DRAFT_TTL = timedelta(days=1)  # form text kept across a lapsed session
KEEP_ATTEMPTS = timedelta(days=7)  # login attempts and ended sessions are kept this long
LANGUAGES = ("zh_CN", "en")

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths cost one argon2 check.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class ReviewError(StoreError):
    """A review action that cannot be done (unknown item, nothing to rule on, bad role...)."""


class NotFound(ReviewError):
    """The call/item/dispute does not exist, or the viewer may not see it (same answer)."""


class Forbidden(ReviewError):
    """The viewer's role may not do this."""


# --------------------------------------------------------------------------- typed outputs


class UserInfo(BaseModel):
    id: int
    username: str
    role: Role
    agent_id: str | None = None
    active: bool = True


class QueueFilter(BaseModel):
    """Queue filters (all optional) and order; dates compare with the call's ``started_at``."""

    date_from: str | None = None  # YYYY-MM-DD, inclusive
    date_to: str | None = None  # YYYY-MM-DD, inclusive
    team: str | None = None
    agent_id: str | None = None
    item_failed: str | None = None  # rubric item id the machine (or a human) failed
    risk_level: Literal["low", "medium", "high"] | None = None
    review_status: ReviewStatus | None = None
    sort: Literal["priority", "newest", "oldest", "score"] = "priority"
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)


class QueueRow(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str | None
    team: str | None
    started_at: str | None
    duration: float | None
    rubric_id: str
    machine_total: float
    total: float  # final (machine with human verdicts applied)
    max: float
    auto_fail: bool
    needs_review: bool
    risk: float | None
    risk_level: str | None
    review_status: ReviewStatus


class QueuePage(BaseModel):
    rows: list[QueueRow]
    page: int
    per_page: int
    has_next: bool
    total: int | None = None  # calls matching the filters (all pages)


class UserPrefs(BaseModel):
    language: str | None = None  # one of LANGUAGES, None: follow the browser
    per_page: int | None = None


class SavedFilterRow(BaseModel):
    id: int
    name: str
    query: str


class FailedCall(BaseModel):
    call_id: str
    source: str | None
    error: str | None
    attempts: int
    last_attempt: str | None


class FinalItem(BaseModel):
    item_result_id: int
    id: str
    section: str
    title: str | None
    critical: bool
    applicable: bool
    max_points: float
    machine_passed: bool | None
    passed: bool | None  # final verdict
    points: float  # final points earned
    overridden: bool
    needs_review: bool
    reason: str | None
    evidence: list[dict[str, Any]]


class FinalScore(BaseModel):
    """The machine result with the human verdicts applied."""

    call_id: str
    result_id: int
    rubric_id: str
    rubric_version: str
    machine_total: float
    machine_auto_fail: bool
    total: float
    max: float
    auto_fail: bool
    review_status: ReviewStatus
    items: list[FinalItem]


class AuditRow(BaseModel):
    id: int
    kind: str
    item_id: str
    item_result_id: int
    user: str
    role: str
    before: bool | None
    after: bool | None
    comment: str | None
    dispute_id: int | None
    created_at: str
    result_id: int | None = None  # the result version the action was on
    carried_from: int | None = None  # the action it repeats on a new result version


class DisputeRow(BaseModel):
    id: int
    item_id: str
    item_result_id: int
    raised_by: str
    reason: str
    status: Literal["open", "upheld", "rejected"]
    ruled_by: str | None
    ruling_comment: str | None
    created_at: str
    ruled_at: str | None


class CallInfo(BaseModel):
    call_id: str
    agent_id: str | None
    agent_name: str | None
    team: str | None
    started_at: str | None
    direction: str | None
    language: str | None
    duration: float | None
    source: str | None


class CalibrationRow(BaseModel):
    """Machine vs reviewers on one rubric item, over the current results of reviewed calls."""

    rubric_id: str
    item_id: str
    title: str | None
    scored: int  # items the machine scored (all calls)
    machine_fails: int  # ... of them failed by the machine
    reviewed: int  # items of reviewed calls
    reviewed_fails: int  # machine fails among them
    confirmed_fails: int  # ... that stayed failed
    overturned: int  # reviewed items whose final verdict differs from the machine's
    fail_precision: float | None  # confirmed_fails / reviewed_fails
    overturn_rate: float | None  # overturned / reviewed


# --------------------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_info(u: m.User) -> UserInfo:
    return UserInfo(id=u.id, username=u.username, role=u.role, agent_id=u.agent_id, active=u.active)


def _item_value(item: m.ItemResult) -> float:
    return item.max_points if item.max_points is not None else item.points


def _flip(verdict: bool | None) -> bool:
    """A ruling that upholds a dispute: fail ↔ pass; an undecided item becomes a pass."""
    return not verdict if verdict is not None else True


def bounded_text(value: str | None, what: str, required: bool = False) -> str | None:
    """``value`` stripped; ReviewError when longer than :data:`MAX_TEXT` (or empty and
    ``required``). The one size rule for comments and reasons, web and API alike."""
    text = (value or "").strip()
    if len(text) > MAX_TEXT:
        raise ReviewError(f"{what} is {len(text)} characters long; at most {MAX_TEXT} are kept")
    if required and not text:
        raise ReviewError(f"{what} must not be empty")
    return text or None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ReviewStore:
    """Review data access behind a :class:`~pipeline.store.Store` (same engine)."""

    def __init__(self, store: Store, hasher: PasswordHasher | None = None):
        self.store = store
        self._hasher = hasher or _hasher  # cheaper parameters only in tests
        self._search = None

    # ------------------------------------------------------------------ accounts

    def add_user(
        self, username: str, password: str, role: str, agent_id: str | None = None
    ) -> UserInfo:
        """Create an account (argon2 password hash). Agents need an ``agent_id``."""
        username = username.strip()
        if not username:
            raise ReviewError("username must not be empty")
        if role not in m.ROLES:
            raise ReviewError(f"unknown role {role!r}; valid: {', '.join(m.ROLES)}")
        if role == "agent" and not agent_id:
            raise ReviewError("an agent account needs --agent-id (the calls' agent_id)")
        if len(password) < 8:
            raise ReviewError("password must be at least 8 characters")
        with self.store._write(f"cannot add user {username!r}") as s:
            if s.scalar(select(m.User.id).where(m.User.username == username)) is not None:
                raise ReviewError(f"user {username!r} already exists")
            user = m.User(
                username=username,
                password_hash=self._hasher.hash(password),
                role=role,
                agent_id=agent_id or None,
                active=True,
            )
            s.add(user)
            s.flush()
            return _user_info(user)

    def authenticate(self, username: str, password: str) -> UserInfo | None:
        """The active user with these credentials, else None (constant-ish time)."""
        with self.store._read("cannot read users") as s:
            user = s.scalar(select(m.User).where(m.User.username == username.strip()))
            try:
                self._hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                return None
            if user is None or not user.active:
                return None
            return _user_info(user)

    def get_user(self, user_id: int) -> UserInfo | None:
        with self.store._read("cannot read users") as s:
            user = s.get(m.User, user_id)
            return _user_info(user) if user and user.active else None

    def list_users(self) -> list[UserInfo]:
        with self.store._read("cannot read users") as s:
            return [_user_info(u) for u in s.scalars(select(m.User).order_by(m.User.username))]

    def set_active(self, username: str, active: bool) -> None:
        """(De)activate an account; deactivation ends its sessions at once."""
        with self.store._write(f"cannot update user {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == username))
            if user is None:
                raise NotFound(f"no user {username!r}")
            user.active = active
            if not active:
                self._revoke_all(s, user.id)

    def set_password(self, username: str, password: str) -> None:
        """A new password for ``username``; every session of the account ends."""
        if len(password) < 8:
            raise ReviewError("password must be at least 8 characters")
        with self.store._write(f"cannot update user {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == username))
            if user is None:
                raise NotFound(f"no user {username!r}")
            user.password_hash = self._hasher.hash(password)
            self._revoke_all(s, user.id)

    # ------------------------------------------------------------------ web sessions

    def create_session(self, user_id: int, ip: str | None = None) -> str:
        """A new session for the user; returns the token for the cookie (only its SHA-256
        is stored)."""
        token = secrets.token_urlsafe(32)
        now = m.utcnow()
        with self.store._write("cannot create a session") as s:
            s.add(
                m.WebSession(
                    token_sha256=token_sha256(token),
                    user_id=user_id,
                    created_at=now,
                    last_seen=now,
                    expires_at=now + SESSION_TTL,
                    ip=(ip or "")[:64] or None,
                )
            )
        return token

    def session_user(self, token: str | None) -> UserInfo | None:
        """The active user of a live (not revoked, not expired) session, else None."""
        if not token or len(token) > 200:
            return None
        now = m.utcnow()
        W = m.WebSession  # noqa: N806
        with self.store._read("cannot read sessions") as s:
            row = s.execute(
                select(W, m.User).join(m.User, m.User.id == W.user_id)
                .where(W.token_sha256 == token_sha256(token))
            ).first()  # fmt: skip
            if row is None:
                return None
            sess, user = row
            if sess.revoked_at is not None or _aware(sess.expires_at) <= now or not user.active:
                return None
            stale = now - _aware(sess.last_seen) > SESSION_TOUCH
            sess_id, info = sess.id, _user_info(user)
        if stale:
            with self.store._write("cannot update a session") as s:
                s.get(m.WebSession, sess_id).last_seen = now
        return info

    def revoke_session(self, token: str | None) -> None:
        if not token:
            return
        with self.store._write("cannot end a session") as s:
            sess = s.scalar(
                select(m.WebSession).where(m.WebSession.token_sha256 == token_sha256(token))
            )
            if sess is not None and sess.revoked_at is None:
                sess.revoked_at = m.utcnow()

    @staticmethod
    def _revoke_all(s: Session, user_id: int) -> None:
        W = m.WebSession  # noqa: N806
        for sess in s.scalars(select(W).where(W.user_id == user_id, W.revoked_at.is_(None))):
            sess.revoked_at = m.utcnow()

    # ------------------------------------------------------------------ form drafts

    def save_draft(self, data: dict[str, str]) -> str:
        """Keep form text typed after the session ended; returns the token for the browser."""
        token = secrets.token_urlsafe(24)
        clean = {str(k)[:40]: str(v)[:MAX_TEXT] for k, v in list(data.items())[:10]}
        with self.store._write("cannot keep the form text") as s:
            s.execute(delete(m.FormDraft).where(m.FormDraft.created_at < m.utcnow() - DRAFT_TTL))
            s.add(m.FormDraft(token_sha256=token_sha256(token), data=clean))
        return token

    def take_draft(self, token: str | None) -> dict[str, str] | None:
        """The kept form text (once: it is deleted), or None."""
        if not token or len(token) > 200:
            return None
        with self.store._write("cannot read the form text") as s:
            row = s.scalar(select(m.FormDraft).where(m.FormDraft.token_sha256 == token_sha256(token)))  # fmt: skip
            if row is None:
                return None
            data = dict(row.data)
            fresh = m.utcnow() - _aware(row.created_at) < DRAFT_TTL
            s.delete(row)
            return data if fresh else None

    # ------------------------------------------------------------------ login throttling

    def record_login(self, username: str, ip: str, ok: bool) -> None:
        """Record an attempt; a success also drops attempts and sessions long past use."""
        with self.store._write("cannot record a login") as s:
            s.add(m.LoginAttempt(username=username.strip().lower()[:255], ip=ip[:64], ok=ok))
            if ok:
                now = m.utcnow()
                s.execute(delete(m.LoginAttempt).where(m.LoginAttempt.created_at < now - KEEP_ATTEMPTS))  # fmt: skip
                s.execute(delete(m.WebSession).where(m.WebSession.expires_at < now - KEEP_ATTEMPTS))  # fmt: skip

    def login_failures(
        self, username: str, ip: str, window: timedelta
    ) -> tuple[list[datetime], list[datetime]]:
        """Failed logins in the last ``window``: (for this account since its last success,
        from this address under any name), each oldest first."""
        A = m.LoginAttempt  # noqa: N806
        since = m.utcnow() - window
        name = username.strip().lower()[:255]
        with self.store._read("cannot read login attempts") as s:
            last_ok = s.scalar(select(func.max(A.created_at)).where(A.username == name, A.ok))
            user_since = max(since, _aware(last_ok)) if last_ok else since
            by_user = s.scalars(
                select(A.created_at).where(A.username == name, ~A.ok, A.created_at > user_since)
                .order_by(A.created_at)
            ).all()  # fmt: skip
            by_ip = s.scalars(
                select(A.created_at).where(A.ip == ip[:64], ~A.ok, A.created_at > since)
                .order_by(A.created_at)
            ).all()  # fmt: skip
        return [_aware(t) for t in by_user], [_aware(t) for t in by_ip]

    # ------------------------------------------------------------------ preferences, filters

    def prefs(self, user_id: int) -> UserPrefs:
        with self.store._read("cannot read preferences") as s:
            row = s.get(m.UserPref, user_id)
            return UserPrefs(language=row.language, per_page=row.per_page) if row else UserPrefs()

    def set_prefs(
        self, user_id: int, *, language: str | None = ..., per_page: int | None = ...
    ) -> UserPrefs:  # type: ignore[assignment]
        """Change the given preferences (``...``: keep; None: back to the default)."""
        if language not in (..., None) and language not in LANGUAGES:
            raise ReviewError(f"unknown language {language!r}; valid: {', '.join(LANGUAGES)}")
        if per_page not in (..., None) and per_page not in PAGE_SIZES:
            raise ReviewError(f"page size must be one of {', '.join(map(str, PAGE_SIZES))}")
        with self.store._write("cannot save preferences") as s:
            row = s.get(m.UserPref, user_id)
            if row is None:
                row = m.UserPref(user_id=user_id)
                s.add(row)
            if language is not ...:
                row.language = language
            if per_page is not ...:
                row.per_page = per_page
            s.flush()
            return UserPrefs(language=row.language, per_page=row.per_page)

    def saved_filters(self, user_id: int) -> list[SavedFilterRow]:
        F = m.SavedFilter  # noqa: N806
        with self.store._read("cannot read saved filters") as s:
            rows = s.scalars(select(F).where(F.user_id == user_id).order_by(F.name))
            return [SavedFilterRow(id=f.id, name=f.name, query=f.query) for f in rows]

    def save_filter(self, user_id: int, name: str, query: str) -> SavedFilterRow:
        """Save (or replace) the named filter; ``query`` is the queue's query string."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise ReviewError("a saved filter needs a name of 1 to 100 characters")
        if len(query) > MAX_TEXT:
            raise ReviewError("filter too long")
        F = m.SavedFilter  # noqa: N806
        with self.store._write("cannot save the filter") as s:
            row = s.scalar(select(F).where(F.user_id == user_id, F.name == name))
            if row is None:
                row = F(user_id=user_id, name=name, query=query)
                s.add(row)
            row.query = query
            s.flush()
            return SavedFilterRow(id=row.id, name=row.name, query=row.query)

    def delete_filter(self, user_id: int, filter_id: int) -> None:
        with self.store._write("cannot delete the filter") as s:
            row = s.get(m.SavedFilter, filter_id)
            if row is None or row.user_id != user_id:
                raise NotFound(f"no saved filter {filter_id}")
            s.delete(row)

    def failed_job(self, call_id: str):
        """The :class:`~pipeline.schema.CallJob` to process a failed call again (or None)."""
        from pipeline.schema import CallJob

        with self.store._read(f"cannot read call {call_id!r}") as s:
            c = s.scalar(select(m.Call).where(m.Call.call_id == call_id, m.Call.status == "failed"))
            if c is None or not c.source:
                return None
            return CallJob(
                call_id=c.call_id,
                source=c.source,
                agent_id=c.agent_id,
                agent_name=c.agent_name,
                team=c.team,
                started_at=c.started_at,
                direction=c.direction,
                language=c.language,
                queue=c.queue,
                skill=c.skill,
                agent_group=c.agent_group,
            )

    # ------------------------------------------------------------------ search

    def search(self, viewer: UserInfo, query: str, page: int = 1, per_page: int = 50):
        """Calls the viewer may see whose transcript says ``query`` (see
        :mod:`pipeline.store.search`)."""
        from pipeline.store.search import SearchIndex

        if self._search is None:
            self._search = SearchIndex(self.store)
        see_all = viewer.role in CAN_SEE_ALL
        return self._search.search(
            query, viewer.agent_id, see_all=see_all, page=page, per_page=per_page
        )

    # ------------------------------------------------------------------ failed calls

    def failed_calls(self, limit: int = 500) -> list[FailedCall]:
        """Calls whose last attempt failed, newest first, with the reason."""
        C, F = m.Call, m.Failure  # noqa: N806
        attempts = (
            select(F.call_pk, func.count().label("n"), func.max(F.created_at).label("last"))
            .group_by(F.call_pk).subquery()
        )  # fmt: skip
        q = (
            select(C, attempts.c.n, attempts.c.last)
            .outerjoin(attempts, attempts.c.call_pk == C.id)
            .where(C.status == "failed")
            .order_by(attempts.c.last.desc(), C.id.desc())
            .limit(limit)
        )
        with self.store._read("cannot read failed calls") as s:
            return [
                FailedCall(
                    call_id=c.call_id,
                    source=c.source,
                    error=c.error,
                    attempts=n or 0,
                    last_attempt=_iso(last),
                )
                for c, n, last in s.execute(q)
            ]

    def issue_token(self, username: str) -> str:
        """A new API token for the user (only its SHA-256 is stored; the old one stops)."""
        token = "cqa_" + secrets.token_urlsafe(32)
        with self.store._write(f"cannot issue a token for {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == username))
            if user is None:
                raise NotFound(f"no user {username!r}")
            user.api_token_sha256 = token_sha256(token)
        return token

    def user_by_token(self, token: str) -> UserInfo | None:
        if not token:
            return None
        with self.store._read("cannot read users") as s:
            user = s.scalar(select(m.User).where(m.User.api_token_sha256 == token_sha256(token)))
            return _user_info(user) if user and user.active else None

    # ------------------------------------------------------------------ queue

    def queue(
        self,
        viewer: UserInfo,
        f: QueueFilter | None = None,
        *,
        with_total: bool = True,
        offset: int | None = None,
    ) -> QueuePage:
        """One page of scored calls the viewer may see, by default what needs a human first
        (needs_review, auto-fail, complaint risk). Uses ``ix_results_queue``; ``with_total``:
        also count the matching calls (joining only what the filters need)."""
        f = f or QueueFilter()
        C, R, CR = m.Call, m.Result, m.CallReview
        on_call: list[Any] = []  # conditions on calls only
        on_result: list[Any] = []  # ... that need the current result
        on_review: list[Any] = []  # ... that need the review state
        if viewer.role not in CAN_SEE_ALL:
            on_call.append(C.agent_id == (viewer.agent_id or "\x00no-agent"))
        if f.agent_id:
            on_call.append(C.agent_id == f.agent_id)
        if f.team:
            on_call.append(C.team == f.team)
        if f.date_from:
            on_call.append(C.started_at >= f.date_from)
        if f.date_to:
            on_call.append(C.started_at <= f.date_to + "T99")  # inclusive whole day, ISO text
        if f.risk_level:
            on_result.append(R.risk_level == f.risk_level)
        if f.review_status == "auto":
            on_review.append(or_(CR.status.is_(None), CR.status == "auto"))
        elif f.review_status:
            on_review.append(CR.status == f.review_status)
        IR = m.ItemResult  # noqa: N806
        item_failed = (IR.item_id == f.item_failed, IR.passed.is_(False))
        if f.item_failed:
            on_result.append(exists().where(IR.result_id == R.id, *item_failed))
        review_join = and_(CR.call_pk == C.id, CR.result_id == R.id)
        q = (
            select(C, R, CR)
            .join(R, C.current_result_id == R.id)
            .outerjoin(CR, review_join)
            .where(*on_call, *on_result, *on_review)
        )
        # the total joins only what its filters need (a scored call has its current result)
        counted = select(func.count()).select_from(C).where(C.current_result_id.is_not(None), *on_call)  # fmt: skip
        if f.item_failed:  # walk the failed items (ix_item_results_item_id_passed), not results
            counted = counted.join(IR, IR.result_id == C.current_result_id).where(*item_failed)
            on_result = on_result[:-1]
        if on_result or on_review:
            counted = counted.join(R, C.current_result_id == R.id).where(*on_result)
        if on_review:
            counted = counted.outerjoin(CR, review_join).where(*on_review)
        order = {
            "priority": (
                R.needs_review.desc(),
                R.auto_fail.desc(),
                R.risk_score.desc(),
                R.id.desc(),
            ),
            "newest": (C.started_at.desc(), C.id.desc()),
            "oldest": (C.started_at.asc(), C.id.asc()),
            "score": (R.total.asc(), R.id.asc()),
        }[f.sort]
        start = offset if offset is not None else (f.page - 1) * f.per_page
        q = q.order_by(*order).limit(f.per_page + 1).offset(start)
        with self.store._read("cannot read the review queue") as s:
            found = s.execute(q).all()
            total = s.scalar(counted) if with_total else None
        rows = [
            QueueRow(
                call_id=c.call_id,
                agent_id=c.agent_id,
                agent_name=c.agent_name,
                team=c.team,
                started_at=c.started_at,
                duration=c.duration,
                rubric_id=r.rubric_id,
                machine_total=r.total,
                total=cr.final_total if cr else r.total,
                max=cr.final_max if cr else r.max,
                auto_fail=cr.final_auto_fail if cr else r.auto_fail,
                needs_review=r.needs_review,
                risk=r.risk_score,
                risk_level=r.risk_level,
                review_status=cr.status if cr else "auto",
            )
            for c, r, cr in found[: f.per_page]
        ]
        return QueuePage(
            rows=rows,
            page=f.page,
            per_page=f.per_page,
            has_next=len(found) > f.per_page,
            total=total,
        )

    def neighbours(
        self, viewer: UserInfo, f: QueueFilter, call_id: str, position: int | None
    ) -> tuple[str | None, str | None]:
        """(previous, next) call ids around ``call_id`` in the queue order of ``f``;
        ``position`` (0-based, from the queue link) narrows the search to a window."""
        around = max(0, (position or 0) - 25)
        window = f.model_copy(update={"page": 1, "per_page": MAX_PAGE_SIZE})
        for offset in dict.fromkeys((around, 0)):
            ids = self._queue_ids(viewer, window, offset, 51 if offset else MAX_PAGE_SIZE)
            if call_id in ids:
                at = ids.index(call_id)
                prev_id = ids[at - 1] if at > 0 else None
                next_id = ids[at + 1] if at + 1 < len(ids) else None
                return prev_id, next_id
        first = self._queue_ids(viewer, window, 0, 1)
        return None, (first[0] if first and first[0] != call_id else None)

    def _queue_ids(self, viewer: UserInfo, f: QueueFilter, offset: int, limit: int) -> list[str]:
        page = f.model_copy(update={"page": 1, "per_page": min(limit, MAX_PAGE_SIZE)})
        return [r.call_id for r in self.queue(viewer, page, with_total=False, offset=offset).rows]

    def facets(self, viewer: UserInfo) -> dict[str, list[str]]:
        """Values for the queue's filter menus (teams, agents, item ids)."""
        with self.store._read("cannot read the review queue") as s:
            teams = s.scalars(select(m.Call.team).where(m.Call.team.is_not(None)).distinct())
            agents_q = select(m.Call.agent_id).where(m.Call.agent_id.is_not(None)).distinct()
            if viewer.role not in CAN_SEE_ALL:
                agents_q = agents_q.where(m.Call.agent_id == viewer.agent_id)
            items = s.scalars(select(m.ItemResult.item_id).distinct())
            return {
                "teams": sorted(teams) if viewer.role in CAN_SEE_ALL else [],
                "agents": sorted(s.scalars(agents_q)),
                "item_ids": sorted(items),
            }

    # ------------------------------------------------------------------ one call

    def _visible_call(self, s: Session, viewer: UserInfo, call_id: str) -> m.Call:
        call = s.scalar(select(m.Call).where(m.Call.call_id == call_id))
        if call is None or call.current_result_id is None:
            raise NotFound(f"no scored call {call_id!r}")
        if viewer.role not in CAN_SEE_ALL and (
            not viewer.agent_id or call.agent_id != viewer.agent_id
        ):
            raise NotFound(f"no scored call {call_id!r}")  # same answer: no existence leak
        return call

    def call_info(self, viewer: UserInfo, call_id: str) -> CallInfo:
        """The call's metadata (raises :class:`NotFound` when the viewer may not see it)."""
        with self.store._read(f"cannot read call {call_id!r}") as s:
            c = self._visible_call(s, viewer, call_id)
            return CallInfo(
                call_id=c.call_id,
                agent_id=c.agent_id,
                agent_name=c.agent_name,
                team=c.team,
                started_at=c.started_at,
                direction=c.direction,
                language=c.language,
                duration=c.duration,
                source=c.source,
            )

    def final_score(self, viewer: UserInfo, call_id: str) -> FinalScore:
        with self.store._read(f"cannot read call {call_id!r}") as s:
            call = self._visible_call(s, viewer, call_id)
            return self._final(s, call)

    @staticmethod
    def _verdicts(s: Session, result_id: int) -> dict[int, bool | None]:
        """item_result_id → the latest human verdict (override or ruling) on it."""
        A = m.ReviewAction  # noqa: N806
        rows = s.execute(
            select(A.item_result_id, A.after)
            .where(A.result_id == result_id, A.kind.in_(("override", "ruling", "confirm")))
            .order_by(A.id)
        )
        return dict(rows.tuples().all())

    def _final(self, s: Session, call: m.Call) -> FinalScore:
        res = s.get(m.Result, call.current_result_id)
        items = s.scalars(
            select(m.ItemResult)
            .where(m.ItemResult.result_id == res.id)
            .order_by(m.ItemResult.position)
        ).all()
        human = self._verdicts(s, res.id)
        out: list[FinalItem] = []
        changed = False
        for it in items:
            passed = human.get(it.id, it.passed)
            changed |= passed != it.passed
            value = _item_value(it)
            out.append(
                FinalItem(
                    item_result_id=it.id,
                    id=it.item_id,
                    section=it.section,
                    title=it.title,
                    critical=it.critical,
                    applicable=it.applicable,
                    max_points=value,
                    machine_passed=it.passed,
                    passed=passed,
                    points=(it.points if passed == it.passed else value) if passed else 0.0,
                    overridden=passed != it.passed,
                    needs_review=it.needs_review and it.id not in human,
                    reason=it.reason,
                    evidence=list(it.evidence or []),
                )
            )
        if changed:
            from pipeline.score.form import form_total

            total, auto = form_total(out)
        else:
            total, auto = res.total, res.auto_fail
        open_dispute = s.scalar(
            select(m.Dispute.id).where(
                m.Dispute.call_pk == call.id,
                m.Dispute.status == "open",
                m.Dispute.item_result_id.in_([i.item_result_id for i in out] or [-1]),
            )
        )
        status: ReviewStatus = "disputed" if open_dispute else ("reviewed" if human else "auto")
        return FinalScore(
            call_id=call.call_id,
            result_id=res.id,
            rubric_id=res.rubric_id,
            rubric_version=res.rubric_version,
            machine_total=res.total,
            machine_auto_fail=res.auto_fail,
            total=total,
            max=res.max,
            auto_fail=auto,
            review_status=status,
            items=out,
        )

    def audit(self, viewer: UserInfo, call_id: str) -> list[AuditRow]:
        """Every human action on the call, oldest first."""
        A, U, IR = m.ReviewAction, m.User, m.ItemResult  # noqa: N806
        with self.store._read(f"cannot read call {call_id!r}") as s:
            call = self._visible_call(s, viewer, call_id)
            rows = s.execute(
                select(A, U.username, U.role, IR.item_id)
                .join(U, U.id == A.user_id)
                .join(IR, IR.id == A.item_result_id)
                .where(A.call_pk == call.id)
                .order_by(A.id)
            )
            return [
                AuditRow(
                    id=a.id,
                    kind=a.kind,
                    item_id=item_id,
                    item_result_id=a.item_result_id,
                    user=username,
                    role=role,
                    before=a.before,
                    after=a.after,
                    comment=a.comment,
                    dispute_id=a.dispute_id,
                    created_at=_iso(a.created_at) or "",
                    result_id=a.result_id,
                    carried_from=a.carried_from_id,
                )
                for a, username, role, item_id in rows
            ]

    def disputes(self, viewer: UserInfo, call_id: str) -> list[DisputeRow]:
        D, IR = m.Dispute, m.ItemResult  # noqa: N806
        with self.store._read(f"cannot read call {call_id!r}") as s:
            call = self._visible_call(s, viewer, call_id)
            names = dict(s.execute(select(m.User.id, m.User.username)).tuples().all())
            rows = s.execute(
                select(D, IR.item_id).join(IR, IR.id == D.item_result_id).where(D.call_pk == call.id)
                .order_by(D.id)
            )  # fmt: skip
            return [
                DisputeRow(
                    id=d.id,
                    item_id=item_id,
                    item_result_id=d.item_result_id,
                    raised_by=names.get(d.raised_by, "?"),
                    reason=d.reason,
                    status=d.status,
                    ruled_by=names.get(d.ruled_by) if d.ruled_by else None,
                    ruling_comment=d.ruling_comment,
                    created_at=_iso(d.created_at) or "",
                    ruled_at=_iso(d.ruled_at),
                )
                for d, item_id in rows
            ]

    # ------------------------------------------------------------------ actions

    def _item(self, s: Session, call: m.Call, item_result_id: int) -> m.ItemResult:
        item = s.get(m.ItemResult, item_result_id)
        if item is None or item.result_id != call.current_result_id:
            raise NotFound(f"no item {item_result_id} in the current result of {call.call_id!r}")
        return item

    def _refresh(self, s: Session, call: m.Call) -> FinalScore:
        s.flush()
        final = self._final(s, call)
        row = s.get(m.CallReview, call.id)
        if row is None:
            row = m.CallReview(call_pk=call.id)
            s.add(row)
        row.result_id = final.result_id
        row.status = final.review_status
        row.final_total = final.total
        row.final_max = final.max
        row.final_auto_fail = final.auto_fail
        row.updated_at = m.utcnow()
        return final

    def override(
        self,
        viewer: UserInfo,
        call_id: str,
        item_result_id: int,
        passed: bool,
        comment: str | None = None,
    ) -> FinalScore:
        """Set the item's verdict to ``passed`` (explicit, so a repeated or stale submit
        changes nothing) and record it; returns the new score."""
        if viewer.role not in CAN_REVIEW:
            raise Forbidden(f"a {viewer.role} may not override items")
        if not isinstance(passed, bool):
            raise ReviewError("an override needs the verdict it sets: pass or fail")
        comment = bounded_text(comment, "comment")
        with self.store._write(f"cannot override on {call_id!r}") as s:
            call = self._visible_call(s, viewer, call_id)
            item = self._item(s, call, item_result_id)
            human = self._verdicts(s, item.result_id)
            before = human.get(item.id, item.passed)
            if before is passed and item.id in human:
                return self._final(s, call)  # already so: idempotent
            s.add(
                m.ReviewAction(
                    call_pk=call.id,
                    result_id=item.result_id,
                    item_result_id=item.id,
                    user_id=viewer.id,
                    kind="override" if before is not passed else "confirm",
                    before=before,
                    after=passed,
                    comment=comment,
                )
            )
            return self._refresh(s, call)

    def confirm(self, viewer: UserInfo, call_id: str, comment: str | None = None) -> FinalScore:
        """Confirm every item without a human verdict as the machine scored it."""
        if viewer.role not in CAN_REVIEW:
            raise Forbidden(f"a {viewer.role} may not confirm reviews")
        comment = bounded_text(comment, "comment")
        with self.store._write(f"cannot confirm {call_id!r}") as s:
            call = self._visible_call(s, viewer, call_id)
            human = self._verdicts(s, call.current_result_id)
            for item in s.scalars(
                select(m.ItemResult).where(m.ItemResult.result_id == call.current_result_id)
            ):
                if item.id not in human:
                    s.add(
                        m.ReviewAction(
                            call_pk=call.id,
                            result_id=item.result_id,
                            item_result_id=item.id,
                            user_id=viewer.id,
                            kind="confirm",
                            before=item.passed,
                            after=item.passed,
                            comment=comment,
                        )
                    )
            return self._refresh(s, call)

    def dispute(self, viewer: UserInfo, call_id: str, item_result_id: int, reason: str) -> int:
        """An agent contests an item of their own call; returns the dispute id."""
        if viewer.role not in CAN_DISPUTE:
            raise Forbidden(f"a {viewer.role} may not raise disputes")
        reason = bounded_text(reason, "the dispute's reason", required=True)
        with self.store._write(f"cannot dispute on {call_id!r}") as s:
            call = self._visible_call(s, viewer, call_id)
            item = self._item(s, call, item_result_id)
            already = s.scalar(
                select(m.Dispute.id).where(
                    m.Dispute.item_result_id == item.id, m.Dispute.status == "open"
                )
            )
            if already is not None:
                raise ReviewError(f"item {item.item_id!r} already has an open dispute")
            current = self._verdicts(s, item.result_id).get(item.id, item.passed)
            d = m.Dispute(
                call_pk=call.id,
                item_result_id=item.id,
                raised_by=viewer.id,
                reason=reason,
                status="open",
            )
            s.add(d)
            s.flush()
            s.add(
                m.ReviewAction(
                    call_pk=call.id,
                    result_id=item.result_id,
                    item_result_id=item.id,
                    user_id=viewer.id,
                    kind="dispute",
                    before=current,
                    after=current,
                    comment=reason,
                    dispute_id=d.id,
                )
            )
            self._refresh(s, call)
            return d.id

    def rule(
        self, viewer: UserInfo, dispute_id: int, upheld: bool, comment: str | None = None
    ) -> FinalScore:
        """Uphold (the item's verdict flips) or reject (it stays) an open dispute."""
        if viewer.role not in CAN_REVIEW:
            raise Forbidden(f"a {viewer.role} may not rule on disputes")
        comment = bounded_text(comment, "ruling comment")
        with self.store._write(f"cannot rule on dispute {dispute_id}") as s:
            d = s.get(m.Dispute, dispute_id)
            if d is None:
                raise NotFound(f"no dispute {dispute_id}")
            if d.status != "open":
                raise ReviewError(f"dispute {dispute_id} was already {d.status}")
            call = s.get(m.Call, d.call_pk)
            item = self._item(s, call, d.item_result_id)
            before = self._verdicts(s, item.result_id).get(item.id, item.passed)
            d.status = "upheld" if upheld else "rejected"
            d.ruled_by = viewer.id
            d.ruling_comment = comment
            d.ruled_at = m.utcnow()
            s.add(
                m.ReviewAction(
                    call_pk=call.id,
                    result_id=item.result_id,
                    item_result_id=item.id,
                    user_id=viewer.id,
                    kind="ruling",
                    before=before,
                    after=_flip(before) if upheld else before,
                    comment=d.ruling_comment,
                    dispute_id=d.id,
                )
            )
            return self._refresh(s, call)

    def call_id_of_dispute(self, dispute_id: int) -> str:
        with self.store._read("cannot read disputes") as s:
            call_id = s.scalar(
                select(m.Call.call_id)
                .join(m.Dispute, m.Dispute.call_pk == m.Call.id)
                .where(m.Dispute.id == dispute_id)
            )
            if call_id is None:
                raise NotFound(f"no dispute {dispute_id}")
            return call_id

    # ------------------------------------------------------------------ calibration

    def calibration(self) -> list[CalibrationRow]:
        """Agreement of machine and reviewers per rubric item (one SQL pass)."""
        C, R, IR, A, CR = m.Call, m.Result, m.ItemResult, m.ReviewAction, m.CallReview  # noqa: N806
        latest = (
            select(A.item_result_id, func.max(A.id).label("action_id"))
            .where(A.kind.in_(("override", "ruling", "confirm")))
            .group_by(A.item_result_id)
            .subquery()
        )
        last = m.ReviewAction.__table__.alias("last_action")
        reviewed = CR.status == "reviewed"
        final = func.coalesce(last.c.after, IR.passed)
        differs = or_(
            and_(final.is_(None), IR.passed.is_not(None)),
            and_(final.is_not(None), IR.passed.is_(None)),
            final != IR.passed,
        )

        def count_if(cond) -> Any:
            return func.sum(case((cond, 1), else_=0))

        q = (
            select(
                R.rubric_id,
                IR.item_id,
                func.max(IR.title),
                func.count(),
                count_if(IR.passed.is_(False)),
                count_if(reviewed),
                count_if(and_(reviewed, IR.passed.is_(False))),
                count_if(and_(reviewed, IR.passed.is_(False), final.is_(False))),
                count_if(and_(reviewed, differs)),
            )
            .select_from(C)
            .join(R, C.current_result_id == R.id)
            .join(IR, IR.result_id == R.id)
            .outerjoin(CR, and_(CR.call_pk == C.id, CR.result_id == R.id))
            .outerjoin(latest, latest.c.item_result_id == IR.id)
            .outerjoin(last, last.c.id == latest.c.action_id)
            .group_by(R.rubric_id, IR.item_id)
            .order_by(R.rubric_id, IR.item_id)
        )
        with self.store._read("cannot compute calibration") as s:
            out = []
            for rubric, item, title, n, fails, rev, rev_fails, confirmed, over in s.execute(q):
                out.append(
                    CalibrationRow(
                        rubric_id=rubric,
                        item_id=item,
                        title=title,
                        scored=n,
                        machine_fails=fails or 0,
                        reviewed=rev or 0,
                        reviewed_fails=rev_fails or 0,
                        confirmed_fails=confirmed or 0,
                        overturned=over or 0,
                        fail_precision=round(confirmed / rev_fails, 4) if rev_fails else None,
                        overturn_rate=round(over / rev, 4) if rev else None,
                    )
                )
            return out


__all__ = [
    "AuditRow",
    "CalibrationRow",
    "CallInfo",
    "DisputeRow",
    "FinalItem",
    "FinalScore",
    "Forbidden",
    "NotFound",
    "QueueFilter",
    "QueuePage",
    "QueueRow",
    "ReviewError",
    "ReviewStore",
    "UserInfo",
    "token_sha256",
]
