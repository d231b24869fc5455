"""Who may do what in the review app: the role tables, and the one rule that turns a user
into the calls they may see (:func:`scope_of`). The store enforces data integrity; roles are
checked here, by the app's dependencies (:func:`pipeline.app.deps.gate`)."""

from __future__ import annotations

from pipeline.store.review import Scope, UserInfo

CAN_SEE_ALL: frozenset[str] = frozenset({"admin", "reviewer", "trainer"})  # others: own calls
CAN_REVIEW: frozenset[str] = frozenset({"admin", "reviewer"})
CAN_DISPUTE: frozenset[str] = frozenset({"agent"})
CAN_CALIBRATE: frozenset[str] = frozenset({"admin", "reviewer", "trainer"})
CAN_MANAGE_USERS: frozenset[str] = frozenset({"admin"})
CAN_COACH: frozenset[str] = CAN_CALIBRATE  # coaching packs: trainers, reviewers, admins
CAN_SEE_PERSONAL_DATA: frozenset[str] = frozenset({"admin", "reviewer"})  # unredacted text


class NotPermitted(Exception):
    """The user's role may not do this (answered 403)."""


def permit(user: UserInfo, roles: frozenset[str], what: str) -> UserInfo:
    """``user`` when their role is one of ``roles``, else :class:`NotPermitted`."""
    if user.role not in roles:
        raise NotPermitted(f"a {user.role} may not {what}")
    return user


def capabilities(user: UserInfo | None) -> dict[str, bool]:
    """What the pages offer ``user`` (menus and buttons; every action is checked again)."""
    role = user.role if user else None
    return {
        "review": role in CAN_REVIEW,
        "dispute": role in CAN_DISPUTE,
        "calibrate": role in CAN_CALIBRATE,
        "users": role in CAN_MANAGE_USERS,
        "coach": role in CAN_COACH,
    }


def scope_of(user: UserInfo) -> Scope:
    """The calls ``user`` reaches: every call for the roles in :data:`CAN_SEE_ALL`, else only
    those of their own ``agent_id`` (agent isolation)."""
    return Scope(user_id=user.id, agent_id=user.agent_id, all_calls=user.role in CAN_SEE_ALL)
