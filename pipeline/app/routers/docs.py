"""``/api/docs``: Swagger UI served from the ``swagger-ui-bundle`` package (no CDN), started
by a local script (no inline script, so the CSP holds)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException

router = APIRouter(include_in_schema=False, tags=["docs"])
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
MEDIA = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>callqa review API</title>
<link rel="icon" href="/api/docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui" data-url="/openapi.json"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script></body></html>"""


def _assets_dir() -> Path:
    try:
        import swagger_ui_bundle
    except ImportError:
        raise HTTPException(503, "swagger-ui-bundle is not installed") from None
    return Path(swagger_ui_bundle.swagger_ui_path)


@router.get("/api/docs", response_class=HTMLResponse)
def api_docs() -> HTMLResponse:
    return HTMLResponse(PAGE)


@router.get("/api/docs/assets/{name}")
def api_docs_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such asset")
    path = _assets_dir() / name
    return FileResponse(path, media_type=MEDIA[path.suffix])
