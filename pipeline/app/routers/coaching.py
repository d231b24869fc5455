"""Coaching packs from the review app: trainers, reviewers and admins pick filters and
download the pack :func:`pipeline.reports.export_coaching_pack` builds, as one .zip.

The pack is built in a temporary directory that is removed once the response is sent.
Clips carry the beeped (redacted) audio and transcripts the redacted text, as in the CLI.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from pipeline.app.deps import gate, render, reviews_of
from pipeline.app.i18n import gettext
from pipeline.app.permissions import CAN_COACH, scope_of
from pipeline.reports import CoachFilter, ReportError, export_coaching_pack
from pipeline.store.review import UserInfo

router = APIRouter(include_in_schema=False, tags=["coaching"])
Coach = Annotated[UserInfo, gate(CAN_COACH, "build coaching packs")]
FILTER_FIELDS = ("item", "agent", "team", "since", "until", "limit")
MAX_PACK = 200  # examples in one pack built by a request (the CLI has no such cap)


def _filters(request: Request) -> tuple[dict[str, Any], CoachFilter]:
    """The pack's filters (400 on bad values); at most :data:`MAX_PACK` examples."""
    params = {k: v for k, v in request.query_params.items() if k in FILTER_FIELDS and v != ""}
    try:
        f = CoachFilter.model_validate(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "filter"
        raise HTTPException(400, f"bad filter {where}: {err['msg']}") from None
    if f.limit is not None and f.limit > MAX_PACK:
        raise HTTPException(400, f"bad filter limit: at most {MAX_PACK} examples in one pack")
    return params, f.model_copy(update={"limit": f.limit or MAX_PACK})


def _page(request: Request, user, f: CoachFilter, error: str | None, status: int) -> Response:
    page = render(
        request,
        "coaching.html",
        user,
        f=f,
        max_pack=MAX_PACK,
        facets=reviews_of(request).facets(scope_of(user)),
        error=error,
    )
    page.status_code = status
    return page


@router.get("/coaching", response_class=HTMLResponse)
def coaching_page(request: Request, user: Coach) -> Response:
    _, f = _filters(request)
    return _page(request, user, f, None, 200)


@router.get("/coaching/pack.zip")
def coaching_pack(request: Request, user: Coach) -> Response:
    _, f = _filters(request)
    work = Path(tempfile.mkdtemp(prefix="callqa-coaching-"))
    try:
        manifest = export_coaching_pack(reviews_of(request).store, work / "pack", f)
        if not manifest.entries:
            shutil.rmtree(work, ignore_errors=True)
            return _page(request, user, f, gettext("No failed items match these filters."), 404)
        archive = work / "coaching-pack.zip"
        _zip(work / "pack", archive)
    except ReportError as exc:
        shutil.rmtree(work, ignore_errors=True)
        return _page(request, user, f, str(exc), 400)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=f"coaching-pack-{stamp}.zip",
        headers={"Cache-Control": "private, no-store"},
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )


def _zip(folder: Path, archive: Path) -> None:
    """Every file of ``folder`` under its relative path; clips are stored, text deflated."""
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            packed = path.suffix in (".wav", ".mp3", ".ogg", ".opus")
            zf.write(
                path,
                path.relative_to(folder).as_posix(),
                compress_type=zipfile.ZIP_STORED if packed else zipfile.ZIP_DEFLATED,
            )
