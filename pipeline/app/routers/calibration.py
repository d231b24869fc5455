"""Calibration: machine vs reviewers per rubric item (page and CSV), and per rubric the
overturned utterances with measured proposals (:mod:`pipeline.rubric_learning`)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from pipeline.app.deps import Reviews, check_csrf, gate, render
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_CALIBRATE, CAN_OWN_RUBRICS
from pipeline.cells import csv_lines
from pipeline.contracts import ContractError
from pipeline.rubric_learning import LearnError, accept_shown, log_acceptance, report
from pipeline.store.review import UserInfo

router = APIRouter(include_in_schema=False, tags=["calibration"])
Calibrator = Annotated[UserInfo, gate(CAN_CALIBRATE, "see calibration")]
RubricOwner = Annotated[UserInfo, gate(CAN_OWN_RUBRICS, "change a rubric")]
CHANGE_LOG = "rubric_changes.jsonl"  # under the app's var dir: every accepted proposal
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
    measured proposals (pipeline.rubric_learning) with their YAML diffs; a rubric owner
    accepts one here (or with `callqa rubric accept`)."""
    try:
        data = report(reviews.store, _rubric_file(request, rubric_id))
    except (ContractError, LearnError) as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return render(request, "calibration_rubric.html", user, report=data)


@router.post("/calibration/{rubric_id}/accept")
async def accept_proposal(
    request: Request,
    rubric_id: str,
    user: RubricOwner,
    reviews: Reviews,
    digest: Annotated[str, Form(max_length=64)] = "",
    _csrf: None = Depends(check_csrf),
) -> Response:
    """Write the proposal the page showed (its digest) as the rubric's next version, after
    its golden cases pass; logged with who accepted it and the diff. Nothing is re-scored
    here: `callqa rescore` applies the new version, human verdicts carried over."""
    path = _rubric_file(request, rubric_id)
    try:
        done = accept_shown(reviews.store, path, digest, by=user.username)
    except (ContractError, LearnError) as exc:
        request.session["flash"] = str(exc)
    else:
        log_acceptance(request.app.state.var_dir / CHANGE_LOG, done)
        request.session["flash"] = _(
            "Version %(version)s of %(rubric)s written (%(item)s). Apply it to the stored "
            "calls: callqa rescore --rubric %(path)s"
        ) % {"version": done.version_after, "rubric": done.rubric_id, "item": done.item_id, "path": done.path}  # fmt: skip
    return RedirectResponse(f"/calibration/{rubric_id}", status_code=303)


def _rubric_file(request: Request, rubric_id: str):
    """``<rubrics dir>/<rubric_id>.yaml`` (404 for anything else: an id is never a path)."""
    if not _RUBRIC_ID.match(rubric_id):
        raise HTTPException(status_code=404, detail="no such rubric")
    path = request.app.state.rubrics_dir / f"{rubric_id}.yaml"
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"no rubric {rubric_id!r}")
    return path
