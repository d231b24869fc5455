"""Accounts (admins): add users, (de)activate them, issue API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pipeline.app.deps import Reviews, check_csrf, gate, render
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_MANAGE_USERS
from pipeline.store.accounts import normal_name
from pipeline.store.review import ReviewError, UserInfo

router = APIRouter(include_in_schema=False, tags=["users"])
Admin = Annotated[UserInfo, gate(CAN_MANAGE_USERS, "manage users")]


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, user: Admin, reviews: Reviews) -> HTMLResponse:
    token = request.session.pop("new_token", None)
    return render(request, "users.html", user, users=reviews.list_users(), token=token)


@router.post("/users")
async def add_user(
    request: Request,
    user: Admin,
    reviews: Reviews,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    agent_id: Annotated[str, Form()] = "",
    teams: Annotated[str, Form()] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    try:
        team_names = [t for t in teams.replace("，", ",").split(",") if t.strip()]
        added = reviews.add_user(username, password, role, agent_id or None, team_names)
        request.session["flash"] = _("Added %(name)s (%(role)s).") % {"name": added.username, "role": added.role}  # fmt: skip
    except ReviewError as exc:
        request.session["flash"] = str(exc)
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{username:id}/active")
async def set_active(
    request: Request,
    username: str,
    user: Admin,
    reviews: Reviews,
    active: Annotated[str, Form()] = "0",
    _csrf: None = Depends(check_csrf),
) -> Response:
    if normal_name(username) == user.username:
        request.session["flash"] = _("You cannot deactivate yourself.")
    else:
        reviews.set_active(username, active == "1")
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{username:id}/token")
async def new_token(
    request: Request,
    username: str,
    user: Admin,
    reviews: Reviews,
    _csrf: None = Depends(check_csrf),
) -> Response:
    request.session["new_token"] = {"user": username, "token": reviews.issue_token(username)}
    return RedirectResponse("/users", status_code=303)
