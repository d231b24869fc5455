"""The JSON API (``/api/...``, described at ``/openapi.json``), bearer-token authenticated.

Tokens are issued per user (``callqa users token NAME`` or the admin's users page) and carry
that user's role: an agent's token sees only the agent's calls.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from pipeline.app.deps import ApiUser, DbId, Reviews, gate, notify
from pipeline.app.permissions import (
    CAN_CALIBRATE,
    CAN_DISPUTE,
    CAN_MANAGE_USERS,
    CAN_REVIEW,
    scope_of,
)
from pipeline.app.routers.calls import serve_audio
from pipeline.store.review import (
    AuditRow,
    CalibrationRow,
    CallInfo,
    DisputeRow,
    FinalScore,
    QueueFilter,
    QueuePage,
    UserInfo,
)

router = APIRouter(prefix="/api", tags=["review"])
Overrider = Annotated[UserInfo, gate(CAN_REVIEW, "override items", api=True)]
Disputer = Annotated[UserInfo, gate(CAN_DISPUTE, "raise disputes", api=True)]
Ruler = Annotated[UserInfo, gate(CAN_REVIEW, "rule on disputes", api=True)]
Calibrator = Annotated[UserInfo, gate(CAN_CALIBRATE, "see calibration", api=True)]
Admin = Annotated[UserInfo, gate(CAN_MANAGE_USERS, "manage users", api=True)]


class CallDetail(BaseModel):
    call: CallInfo
    final: FinalScore
    risk: dict[str, Any] | None
    # summary, contact reason, resolved / needs follow-up (Result.summary; LLM backend on)
    summary: dict[str, Any] | None = None
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
def list_calls(user: ApiUser, reviews: Reviews, f: Annotated[QueueFilter, Query()]) -> QueuePage:
    """The review queue (same filters and order as the web page)."""
    return reviews.queue(scope_of(user), f)


@router.get("/calls/{call_id:id}", response_model=CallDetail)
def get_call(call_id: str, user: ApiUser, reviews: Reviews) -> CallDetail:
    """A call's metadata, final score (machine + human verdicts), risk, audit log, disputes."""
    scope = scope_of(user)
    info = reviews.call_info(scope, call_id)
    result = reviews.store.get_result(call_id)
    return CallDetail(
        call=info,
        final=reviews.final_score(scope, call_id),
        risk=result.risk.model_dump(mode="json") if result and result.risk else None,
        summary=result.summary.model_dump(mode="json") if result and result.summary else None,
        audit=reviews.audit(scope, call_id),
        disputes=reviews.disputes(scope, call_id),
    )


@router.get("/calls/{call_id:id}/result")
def get_result(call_id: str, user: ApiUser, reviews: Reviews) -> dict[str, Any]:
    """The machine Result JSON, unchanged (DESIGN.md contract)."""
    reviews.call_info(scope_of(user), call_id)
    return reviews.store.get_result(call_id).model_dump(mode="json", exclude_none=True)


@router.get("/calls/{call_id:id}/transcript")
def get_transcript(call_id: str, user: ApiUser, reviews: Reviews) -> dict[str, Any]:
    """The Transcript JSON the current result was scored from."""
    reviews.call_info(scope_of(user), call_id)
    transcript = reviews.store.get_transcript(call_id)
    return transcript.model_dump(mode="json", exclude_none=True) if transcript else {}


@router.get("/calls/{call_id:id}/audio", response_class=Response)
def get_audio(request: Request, call_id: str, user: ApiUser) -> Response:
    """The call's recording with personal data replaced by a tone (Range requests work)."""
    return serve_audio(request, user, call_id)


@router.post("/calls/{call_id:id}/items/{item_result_id}/override", response_model=FinalScore)
def override(
    request: Request,
    call_id: str,
    item_result_id: DbId,
    body: OverrideIn,
    user: Overrider,
    reviews: Reviews,
) -> FinalScore:
    """Set an item's verdict (audit-logged; idempotent); returns the new final score."""
    final = reviews.override(scope_of(user), call_id, item_result_id, body.passed, body.comment)
    notify(request)
    return final


@router.post("/calls/{call_id:id}/items/{item_result_id}/dispute", response_model=DisputeOut)
def dispute(
    call_id: str, item_result_id: DbId, body: DisputeIn, user: Disputer, reviews: Reviews
) -> DisputeOut:
    return DisputeOut(
        dispute_id=reviews.dispute(scope_of(user), call_id, item_result_id, body.reason)
    )


@router.post("/disputes/{dispute_id}/ruling", response_model=FinalScore)
def ruling(
    request: Request, dispute_id: DbId, body: RulingIn, user: Ruler, reviews: Reviews
) -> FinalScore:
    final = reviews.rule(scope_of(user), dispute_id, body.upheld, body.comment)
    notify(request)
    return final


@router.get("/calibration", response_model=list[CalibrationRow])
def calibration(user: Calibrator, reviews: Reviews) -> list[CalibrationRow]:
    return reviews.calibration()


@router.get("/users", response_model=list[UserInfo])
def users(user: Admin, reviews: Reviews) -> list[UserInfo]:
    return reviews.list_users()
