"""Liveness and the browser's favicon request (no sign-in)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from pipeline import __version__

router = APIRouter(include_in_schema=False, tags=["system"])


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}
