"""Calibration: machine vs reviewers per rubric item (page and CSV)."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from pipeline.app.deps import Reviews, gate, render
from pipeline.app.permissions import CAN_CALIBRATE
from pipeline.store.review import UserInfo

router = APIRouter(include_in_schema=False, tags=["calibration"])
Calibrator = Annotated[UserInfo, gate(CAN_CALIBRATE, "see calibration")]


@router.get("/calibration", response_class=HTMLResponse)
def calibration_page(request: Request, user: Calibrator, reviews: Reviews) -> HTMLResponse:
    return render(request, "calibration.html", user, rows=reviews.calibration())


@router.get("/calibration.csv")
def calibration_csv(user: Calibrator, reviews: Reviews) -> Response:
    rows = reviews.calibration()
    buf = io.StringIO()
    fields = list(rows[0].model_dump()) if rows else ["rubric_id", "item_id"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(r.model_dump() for r in rows)
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="calibration.csv"'},
    )
