"""Who may do what in the review app: the role tables, and the one rule that turns a user
into the calls they may see (:func:`scope_of`). The store enforces data integrity; roles are
checked here, by the app's dependencies (:func:`pipeline.app.deps.gate`)."""

from __future__ import annotations

from pipeline.store.review import Scope, UserInfo

CAN_SEE_ALL: frozenset[str] = frozenset({"admin", "reviewer", "trainer", "manager"})
# team leads: their teams' calls (user_teams); agents: their own calls
CAN_REVIEW: frozenset[str] = frozenset({"admin", "reviewer"})
CAN_DISPUTE: frozenset[str] = frozenset({"agent"})
CAN_CALIBRATE: frozenset[str] = frozenset({"admin", "reviewer", "trainer"})
CAN_MANAGE_USERS: frozenset[str] = frozenset({"admin"})
# rubric owners: accept a learnt proposal as a new rubric version (calibration page)
CAN_OWN_RUBRICS: frozenset[str] = frozenset({"admin", "trainer"})
CAN_COACH: frozenset[str] = CAN_CALIBRATE  # coaching packs: trainers, reviewers, admins
CAN_SEE_DASHBOARD: frozenset[str] = frozenset(
    {"admin", "reviewer", "trainer", "manager", "team_lead", "agent"}
)  # each within their scope (scope_of)
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
        "own_rubrics": role in CAN_OWN_RUBRICS,
        "coach": role in CAN_COACH,
        "dashboard": role in CAN_SEE_DASHBOARD,
    }


def scope_of(user: UserInfo) -> Scope:
    """The calls ``user`` reaches: every call for the roles in :data:`CAN_SEE_ALL`, a team
    lead's teams, else only those of their own ``agent_id`` (agent isolation)."""
    if user.role in CAN_SEE_ALL:
        return Scope(user_id=user.id, all_calls=True)
    if user.role == "team_lead":
        return Scope(user_id=user.id, teams=user.teams or ("\x00no-team",))
    return Scope(user_id=user.id, agent_id=user.agent_id)
