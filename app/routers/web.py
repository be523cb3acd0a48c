"""GET / and its static assets: a page to try the models without writing code."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound

router = APIRouter(tags=["web"], include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only these files are served: a fixed list, so no path a client sends can reach the file system.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "identify.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# Everything from this origin only; images may also be object URLs (uploads, results) or data: URIs.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' blob: data:",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate on every load so a new release's page and script are never mixed with old ones.
    "Cache-Control": "no-cache",
}


@router.api_route("/", methods=["GET", "HEAD"], response_class=FileResponse)
async def index() -> FileResponse:
    """The demo page."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/static/{name}", response_class=FileResponse)
async def static_asset(name: str) -> FileResponse:
    """The demo page's script and style sheet."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=SECURITY_HEADERS)
