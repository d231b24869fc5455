"""Calibration: machine vs reviewers per rubric item (page and CSV), and per rubric the
overturned utterances with measured proposals (:mod:`pipeline.rubric_learning`)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from pipeline.app.deps import Reviews, gate, render
from pipeline.app.permissions import CAN_CALIBRATE
from pipeline.cells import csv_lines
from pipeline.contracts import ContractError
from pipeline.rubric_learning import LearnError, report
from pipeline.store.review import UserInfo

router = APIRouter(include_in_schema=False, tags=["calibration"])
Calibrator = Annotated[UserInfo, gate(CAN_CALIBRATE, "see calibration")]
_RUBRIC_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*$")  # a shipped id, never a path


@router.get("/calibration", response_class=HTMLResponse)
def calibration_page(request: Request, user: Calibrator, reviews: Reviews) -> HTMLResponse:
    return render(request, "calibration.html", user, rows=reviews.calibration())


@router.get("/calibration.csv")
def calibration_csv(user: Calibrator, reviews: Reviews) -> Response:
    rows = reviews.calibration()
    fields = list(rows[0].model_dump()) if rows else ["rubric_id", "item_id"]
    return StreamingResponse(
        csv_lines(fields, (r.model_dump() for r in rows)),  # BOM: Excel reads UTF-8
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calibration.csv"'},
    )


@router.get("/calibration/{rubric_id}", response_class=HTMLResponse)
def calibration_rubric(
    request: Request, rubric_id: str, user: Calibrator, reviews: Reviews
) -> HTMLResponse:
    """One rubric: per item the utterances reviewers and the rule disagreed on, and the
    measured proposals (pipeline.rubric_learning); accepting one is `callqa rubric accept`."""
    if not _RUBRIC_ID.match(rubric_id):
        raise HTTPException(status_code=404, detail="no such rubric")
    try:
        data = report(reviews.store, rubric_id)
    except (FileNotFoundError, ContractError, LearnError) as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return render(request, "calibration_rubric.html", user, report=data)
