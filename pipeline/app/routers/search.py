"""Search across calls by what was said: ``/search?q=...`` (agents: their own calls)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from pipeline.app.deps import User, render, reviews_of
from pipeline.app.permissions import scope_of
from pipeline.store.search import MAX_QUERY

router = APIRouter(include_in_schema=False, tags=["search"])


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    user: User,
    q: Annotated[str, Query(max_length=MAX_QUERY * 4)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> HTMLResponse:
    results = reviews_of(request).search(scope_of(user), q, page=page) if q.strip() else None
    return render(
        request,
        "search.html",
        user,
        q=q,
        results=results,
        prev_url="?" + urlencode({"q": q, "page": page - 1}) if page > 1 else None,
        next_url="?" + urlencode({"q": q, "page": page + 1})
        if results and results.has_next
        else None,  # fmt: skip
    )
