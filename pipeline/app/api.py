"""The JSON API (``/api/...``, described at ``/openapi.json``), bearer-token authenticated.

Tokens are issued per user (``callqa users token NAME`` or the admin's users page) and carry
that user's role: an agent's token sees only the agent's calls.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from pipeline.store.review import (
    CAN_CALIBRATE,
    CAN_DISPUTE,
    CAN_MANAGE_USERS,
    CAN_REVIEW,
    AuditRow,
    CalibrationRow,
    CallInfo,
    DisputeRow,
    FinalScore,
    QueueFilter,
    QueuePage,
    ReviewStore,
    UserInfo,
)

DbId = Annotated[int, Path(ge=1, le=2**31 - 1)]
bearer = HTTPBearer(auto_error=False, description="API token of a callqa user")


def api_user(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> UserInfo:
    reviews: ReviewStore = request.app.state.reviews
    user = reviews.user_by_token(creds.credentials) if creds else None
    if user is None:
        raise HTTPException(401, "a valid API token is required", {"WWW-Authenticate": "Bearer"})
    return user


ApiUser = Annotated[UserInfo, Depends(api_user)]
router = APIRouter(prefix="/api", tags=["review"])


def _reviews(request: Request) -> ReviewStore:
    return request.app.state.reviews


def _require(user: UserInfo, roles: frozenset[str], what: str) -> None:
    if user.role not in roles:
        raise HTTPException(403, f"a {user.role} may not {what}")


class CallDetail(BaseModel):
    call: CallInfo
    final: FinalScore
    risk: dict[str, Any] | None
    audit: list[AuditRow]
    disputes: list[DisputeRow]


class OverrideIn(BaseModel):
    passed: bool  # the verdict the item gets (explicit: repeating the call changes nothing)
    comment: str | None = None


class DisputeIn(BaseModel):
    reason: str


class DisputeOut(BaseModel):
    dispute_id: int


class RulingIn(BaseModel):
    upheld: bool
    comment: str | None = None


@router.get("/me", response_model=UserInfo)
def me(user: ApiUser) -> UserInfo:
    return user


@router.get("/calls", response_model=QueuePage)
def list_calls(request: Request, user: ApiUser, f: Annotated[QueueFilter, Query()]) -> QueuePage:
    """The review queue (same filters and order as the web page)."""
    return _reviews(request).queue(user, f)


@router.get("/calls/{call_id:id}", response_model=CallDetail)
def get_call(request: Request, call_id: str, user: ApiUser) -> CallDetail:
    """A call's metadata, final score (machine + human verdicts), risk, audit log, disputes."""
    reviews = _reviews(request)
    info = reviews.call_info(user, call_id)
    result = reviews.store.get_result(call_id)
    return CallDetail(
        call=info,
        final=reviews.final_score(user, call_id),
        risk=result.risk.model_dump(mode="json") if result and result.risk else None,
        audit=reviews.audit(user, call_id),
        disputes=reviews.disputes(user, call_id),
    )


@router.get("/calls/{call_id:id}/result")
def get_result(request: Request, call_id: str, user: ApiUser) -> dict[str, Any]:
    """The machine Result JSON, unchanged (DESIGN.md contract)."""
    reviews = _reviews(request)
    reviews.call_info(user, call_id)
    return reviews.store.get_result(call_id).model_dump(mode="json", exclude_none=True)


@router.get("/calls/{call_id:id}/transcript")
def get_transcript(request: Request, call_id: str, user: ApiUser) -> dict[str, Any]:
    """The Transcript JSON the current result was scored from."""
    reviews = _reviews(request)
    reviews.call_info(user, call_id)
    transcript = reviews.store.get_transcript(call_id)
    return transcript.model_dump(mode="json", exclude_none=True) if transcript else {}


@router.get("/calls/{call_id:id}/audio", response_class=Response)
def get_audio(request: Request, call_id: str, user: ApiUser) -> Response:
    """The call's recording with personal data replaced by a tone (Range requests work)."""
    from pipeline.app.main import serve_audio  # main imports this module

    return serve_audio(request, user, call_id)


@router.post("/calls/{call_id:id}/items/{item_result_id}/override", response_model=FinalScore)
def override(
    request: Request, call_id: str, item_result_id: DbId, body: OverrideIn, user: ApiUser
) -> FinalScore:
    """Set an item's verdict (audit-logged; idempotent); returns the new final score."""
    _require(user, CAN_REVIEW, "override items")
    final = _reviews(request).override(user, call_id, item_result_id, body.passed, body.comment)
    if request.app.state.webhook is not None:
        request.app.state.webhook.send("final_score", final.model_dump(mode="json"))
    return final


@router.post("/calls/{call_id:id}/items/{item_result_id}/dispute", response_model=DisputeOut)
def dispute(
    request: Request, call_id: str, item_result_id: DbId, body: DisputeIn, user: ApiUser
) -> DisputeOut:
    _require(user, CAN_DISPUTE, "raise disputes")
    return DisputeOut(
        dispute_id=_reviews(request).dispute(user, call_id, item_result_id, body.reason)
    )


@router.post("/disputes/{dispute_id}/ruling", response_model=FinalScore)
def ruling(request: Request, dispute_id: DbId, body: RulingIn, user: ApiUser) -> FinalScore:
    _require(user, CAN_REVIEW, "rule on disputes")
    final = _reviews(request).rule(user, dispute_id, body.upheld, body.comment)
    if request.app.state.webhook is not None:
        request.app.state.webhook.send("final_score", final.model_dump(mode="json"))
    return final


@router.get("/calibration", response_model=list[CalibrationRow])
def calibration(request: Request, user: ApiUser) -> list[CalibrationRow]:
    _require(user, CAN_CALIBRATE, "see calibration")
    return _reviews(request).calibration()


@router.get("/users", response_model=list[UserInfo])
def users(request: Request, user: ApiUser) -> list[UserInfo]:
    _require(user, CAN_MANAGE_USERS, "manage users")
    return _reviews(request).list_users()
