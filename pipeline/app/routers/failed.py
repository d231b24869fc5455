"""Failed calls (admins): the reason of each, and re-queueing one to be processed again.

A re-queued call is processed in the app's background worker with the configured settings
(``QA_*``, the app's database), exactly as a run would: on success it becomes a scored call
in the queue, otherwise its new failure reason is listed here.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from pipeline.app.deps import check_csrf, gate, render, reviews_of
from pipeline.app.i18n import gettext as _
from pipeline.app.permissions import CAN_MANAGE_USERS
from pipeline.store.review import NotFound, UserInfo

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, tags=["failed calls"])
Admin = Annotated[UserInfo, gate(CAN_MANAGE_USERS, "see failed calls")]
_lock = threading.Lock()


@router.get("/admin/failed", response_class=HTMLResponse)
def failed_page(request: Request, user: Admin) -> HTMLResponse:
    return render(request, "failed.html", user, calls=reviews_of(request).failed_calls())


@router.post("/admin/failed/{call_id:id}/requeue")
async def requeue(
    request: Request, call_id: str, user: Admin, _csrf: None = Depends(check_csrf)
) -> Response:
    reviews = reviews_of(request)
    job = reviews.failed_job(call_id)
    if job is None:
        raise NotFound(f"no failed call {call_id!r}")
    _worker(request).submit(_process, request.app, job)
    request.session["flash"] = _("Call %(id)s re-queued.") % {"id": call_id}
    return RedirectResponse("/admin/failed", status_code=303)


def _worker(request: Request) -> ThreadPoolExecutor:
    with _lock:
        pool = getattr(request.app.state, "requeue_pool", None)
        if pool is None:
            pool = request.app.state.requeue_pool = ThreadPoolExecutor(1, "callqa-requeue")
        return pool


def _process(app, job) -> None:
    """One call through the pipeline (one processor per app: models load once)."""
    try:
        processor = getattr(app.state, "processor", None)
        if processor is None:
            from pipeline.config import load_settings
            from pipeline.process import CallProcessor

            url = app.state.reviews.store.engine.url.render_as_string(hide_password=False)
            processor = app.state.processor = CallProcessor(load_settings(database_url=url))
        processor.process(job)
    except Exception:  # the call stays failed; the log says why
        log.exception("re-queued call %s", job.call_id)
