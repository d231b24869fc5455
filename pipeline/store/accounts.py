"""Accounts of the review app: users with argon2 password hashes, API tokens, web sessions,
form text kept across a lapsed session, login attempts (for throttling), preferences and
saved queue filters. Only SHA-256 digests of tokens are stored."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, object_session

from pipeline.store import models as m
from pipeline.store.scope import MAX_TEXT, NotFound, ReviewError
from pipeline.store.store import Store

Role = Literal["admin", "reviewer", "trainer", "agent", "team_lead", "manager"]
PAGE_SIZES = (20, 50, 100, 200)  # queue page sizes a user may save
SESSION_TTL = timedelta(hours=12)  # one working day
SESSION_TOUCH = timedelta(minutes=5)  # last_seen is written at most this often
DRAFT_TTL = timedelta(days=1)  # form text kept across a lapsed session
KEEP_ATTEMPTS = timedelta(days=7)  # login attempts and ended sessions are kept this long
LANGUAGES = ("zh_CN", "en")

HASHER = PasswordHasher()
# Verified against when the user does not exist, so both paths cost one argon2 check.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


class UserInfo(BaseModel):
    id: int
    username: str
    role: Role
    agent_id: str | None = None
    active: bool = True
    teams: tuple[str, ...] = ()  # a team lead's teams (the calls' ``team``)


class UserPrefs(BaseModel):
    language: str | None = None  # one of LANGUAGES, None: follow the browser
    per_page: int | None = None


class LoginFailures(BaseModel):
    """Times of recent failed logins (see :meth:`Accounts.login_failures`)."""

    account: list[datetime]  # this account, any address
    pair: list[datetime]  # this account from this address
    address: list[datetime]  # this address, any name


class SavedFilterRow(BaseModel):
    id: int
    name: str
    query: str


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normal_name(username: str) -> str:
    """The one form a user name is stored, signed in, throttled and looked up under
    (NFKC, outer spaces dropped, at most 255 characters; case kept: ``Rev`` is not ``rev``)."""
    return unicodedata.normalize("NFKC", username).strip()[:255]


def _user_info(u: m.User) -> UserInfo:
    s = object_session(u)
    teams = s.scalars(select(m.UserTeam.team).where(m.UserTeam.user_id == u.id)) if s else []
    return UserInfo(
        id=u.id,
        username=u.username,
        role=u.role,
        agent_id=u.agent_id,
        active=u.active,
        teams=tuple(sorted(teams)),
    )


def _clean_teams(role: str, teams: list[str] | tuple[str, ...] | None) -> list[str]:
    """The distinct non-empty team names; a team lead needs at least one, others none."""
    names = sorted({t.strip() for t in teams or () if t and t.strip()})
    if role == "team_lead" and not names:
        raise ReviewError("a team_lead account needs --team (the calls' team), at least one")
    if role != "team_lead" and names:
        raise ReviewError(f"only a team_lead has teams, not a {role}")
    if any(len(t) > 255 for t in names):
        raise ReviewError("a team name is at most 255 characters")
    return names


class Accounts:
    """Users, tokens, sessions, drafts, login attempts, preferences, saved filters."""

    store: Store
    _hasher: PasswordHasher

    # ------------------------------------------------------------------ accounts

    def add_user(
        self,
        username: str,
        password: str,
        role: str,
        agent_id: str | None = None,
        teams: list[str] | tuple[str, ...] | None = None,
    ) -> UserInfo:
        """Create an account (argon2 password hash). Agents need an ``agent_id``, team leads
        their ``teams``."""
        username = normal_name(username)
        if not username:
            raise ReviewError("username must not be empty")
        if role not in m.ROLES:
            raise ReviewError(f"unknown role {role!r}; valid: {', '.join(m.ROLES)}")
        if role == "agent" and not agent_id:
            raise ReviewError("an agent account needs --agent-id (the calls' agent_id)")
        team_names = _clean_teams(role, teams)
        if len(password) < 8:
            raise ReviewError("password must be at least 8 characters")
        with self.store.transaction(f"cannot add user {username!r}") as s:
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
            s.add_all(m.UserTeam(user_id=user.id, team=t) for t in team_names)
            s.flush()
            return _user_info(user)

    def authenticate(self, username: str, password: str) -> UserInfo | None:
        """The active user with these credentials, else None (constant-ish time)."""
        with self.store.session("cannot read users") as s:
            user = s.scalar(select(m.User).where(m.User.username == normal_name(username)))
            try:
                self._hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
            except (VerificationError, InvalidHashError):
                return None
            if user is None or not user.active:
                return None
            return _user_info(user)

    def get_user(self, user_id: int) -> UserInfo | None:
        with self.store.session("cannot read users") as s:
            user = s.get(m.User, user_id)
            return _user_info(user) if user and user.active else None

    def list_users(self) -> list[UserInfo]:
        with self.store.session("cannot read users") as s:
            return [_user_info(u) for u in s.scalars(select(m.User).order_by(m.User.username))]

    def set_active(self, username: str, active: bool) -> None:
        """(De)activate an account; deactivation ends its sessions at once."""
        with self.store.transaction(f"cannot update user {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == normal_name(username)))
            if user is None:
                raise NotFound(f"no user {username!r}")
            user.active = active
            if not active:
                self._revoke_all(s, user.id)

    def set_teams(self, username: str, teams: list[str] | tuple[str, ...]) -> UserInfo:
        """Replace a team lead's teams (what they see changes with their next request)."""
        with self.store.transaction(f"cannot update user {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == normal_name(username)))
            if user is None:
                raise NotFound(f"no user {username!r}")
            names = _clean_teams(user.role, teams)
            s.execute(delete(m.UserTeam).where(m.UserTeam.user_id == user.id))
            s.add_all(m.UserTeam(user_id=user.id, team=t) for t in names)
            s.flush()
            return _user_info(user)

    def set_password(self, username: str, password: str) -> None:
        """A new password for ``username``; every session of the account ends."""
        if len(password) < 8:
            raise ReviewError("password must be at least 8 characters")
        with self.store.transaction(f"cannot update user {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == normal_name(username)))
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
        with self.store.transaction("cannot create a session") as s:
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
        with self.store.session("cannot read sessions") as s:
            row = s.execute(
                select(W, m.User).join(m.User, m.User.id == W.user_id)
                .where(W.token_sha256 == token_sha256(token))
            ).first()  # fmt: skip
            if row is None:
                return None
            sess, user = row
            if sess.revoked_at is not None or m.aware(sess.expires_at) <= now or not user.active:
                return None
            stale = now - m.aware(sess.last_seen) > SESSION_TOUCH
            sess_id, info = sess.id, _user_info(user)
        if stale:
            with self.store.transaction("cannot update a session") as s:
                s.get(m.WebSession, sess_id).last_seen = now
        return info

    def session_owner(self, token: str | None) -> int | None:
        """The active user a session token was issued to, live, expired or ended (for text
        typed after the session lapsed); None for a token the store never issued."""
        if not token or len(token) > 200:
            return None
        W = m.WebSession  # noqa: N806
        with self.store.session("cannot read sessions") as s:
            return s.scalar(
                select(m.User.id).join(W, W.user_id == m.User.id)
                .where(W.token_sha256 == token_sha256(token), m.User.active)
            )  # fmt: skip

    def revoke_session(self, token: str | None) -> None:
        if not token:
            return
        with self.store.transaction("cannot end a session") as s:
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

    def save_draft(self, user_id: int, data: dict[str, str]) -> str:
        """Keep form text ``user_id`` typed after their session ended; returns the token for
        the browser. Only that user gets it back (:meth:`take_draft`)."""
        token = secrets.token_urlsafe(24)
        clean = {str(k)[:40]: str(v)[:MAX_TEXT] for k, v in list(data.items())[:10]}
        with self.store.transaction("cannot keep the form text") as s:
            s.execute(delete(m.FormDraft).where(m.FormDraft.created_at < m.utcnow() - DRAFT_TTL))
            s.add(m.FormDraft(token_sha256=token_sha256(token), user_id=user_id, data=clean))
        return token

    def take_draft(self, token: str | None, user_id: int) -> dict[str, str] | None:
        """The kept form text if ``user_id`` typed it (once: it is deleted), or None."""
        if not token or len(token) > 200:
            return None
        with self.store.transaction("cannot read the form text") as s:
            row = s.scalar(select(m.FormDraft).where(m.FormDraft.token_sha256 == token_sha256(token)))  # fmt: skip
            if row is None:
                return None
            data = dict(row.data)
            fresh = m.utcnow() - m.aware(row.created_at) < DRAFT_TTL
            s.delete(row)
            return data if fresh and row.user_id == user_id else None

    # ------------------------------------------------------------------ login throttling

    def record_login(self, username: str, ip: str, ok: bool) -> None:
        """Record an attempt; a success also drops attempts and sessions long past use."""
        with self.store.transaction("cannot record a login") as s:
            s.add(m.LoginAttempt(username=normal_name(username), ip=ip[:64], ok=ok))
            if ok:
                now = m.utcnow()
                s.execute(delete(m.LoginAttempt).where(m.LoginAttempt.created_at < now - KEEP_ATTEMPTS))  # fmt: skip
                s.execute(delete(m.WebSession).where(m.WebSession.expires_at < now - KEEP_ATTEMPTS))  # fmt: skip

    def login_failures(self, username: str, ip: str, window: timedelta) -> LoginFailures:
        """Failed logins in the last ``window``, each list oldest first: for this account
        from any address (since its last success anywhere), for this account from this
        address (since its last success from there), from this address under any name."""
        A = m.LoginAttempt  # noqa: N806
        since = m.utcnow() - window
        name, ip = normal_name(username), ip[:64]

        def after(last: datetime | None) -> datetime:
            return max(since, m.aware(last)) if last else since

        with self.store.session("cannot read login attempts") as s:
            ok_at = select(func.max(A.created_at)).where(A.username == name, A.ok)
            user_since = after(s.scalar(ok_at))
            pair_since = after(s.scalar(ok_at.where(A.ip == ip)))
            by_user = s.execute(
                select(A.created_at, A.ip).where(A.username == name, ~A.ok, A.created_at > min(user_since, pair_since))
                .order_by(A.created_at)
            ).all()  # fmt: skip
            by_ip = s.scalars(
                select(A.created_at).where(A.ip == ip, ~A.ok, A.created_at > since)
                .order_by(A.created_at)
            ).all()  # fmt: skip
        times = [(m.aware(t), at) for t, at in by_user]
        return LoginFailures(
            account=[t for t, _ in times if t > user_since],
            pair=[t for t, at in times if at == ip and t > pair_since],
            address=[m.aware(t) for t in by_ip],
        )

    # ------------------------------------------------------------------ preferences, filters

    def prefs(self, user_id: int) -> UserPrefs:
        with self.store.session("cannot read preferences") as s:
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
        with self.store.transaction("cannot save preferences") as s:
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
        with self.store.session("cannot read saved filters") as s:
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
        with self.store.transaction("cannot save the filter") as s:
            row = s.scalar(select(F).where(F.user_id == user_id, F.name == name))
            if row is None:
                row = F(user_id=user_id, name=name, query=query)
                s.add(row)
            row.query = query
            s.flush()
            return SavedFilterRow(id=row.id, name=row.name, query=row.query)

    def delete_filter(self, user_id: int, filter_id: int) -> None:
        with self.store.transaction("cannot delete the filter") as s:
            row = s.get(m.SavedFilter, filter_id)
            if row is None or row.user_id != user_id:
                raise NotFound(f"no saved filter {filter_id}")
            s.delete(row)

    def issue_token(self, username: str) -> str:
        """A new API token for the user (only its SHA-256 is stored; the old one stops)."""
        token = "cqa_" + secrets.token_urlsafe(32)
        with self.store.transaction(f"cannot issue a token for {username!r}") as s:
            user = s.scalar(select(m.User).where(m.User.username == normal_name(username)))
            if user is None:
                raise NotFound(f"no user {username!r}")
            user.api_token_sha256 = token_sha256(token)
        return token

    def user_by_token(self, token: str) -> UserInfo | None:
        if not token:
            return None
        with self.store.session("cannot read users") as s:
            user = s.scalar(select(m.User).where(m.User.api_token_sha256 == token_sha256(token)))
            return _user_info(user) if user and user.active else None
