"""GET /docs: the API reference (Swagger UI), its script, style sheet and icon served by the service itself.

FastAPI's own page loads Swagger UI from cdn.jsdelivr.net, so on a laptop offline or inside a private network
it stays blank. The files come from the fastapi-swagger package, which ships swagger-ui-dist's (Apache-2.0);
only its resources folder is used, served below ``ASSETS_PATH``; swagger-ui's licence, NOTICE and the bundle's
third-party notices, which that package leaves out, are in ``app/licenses/swagger-ui``. ReDoc is off: no package
ships it offline.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.errors import NotFound

router = APIRouter(tags=["docs"], include_in_schema=False)

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/static"
ASSETS_PACKAGE = ("fastapi_swagger", "resources")
SCRIPT, STYLE_SHEET, ICON = "swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"

# Everything from this origin: the inline script starts Swagger UI, whose styles are partly inline and whose
# icons are data: URIs. A page that asked another host for anything would fail here as it does offline.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}
# Revalidated on every load (a 304 while unchanged), so an upgraded package never meets a cached old script.
ASSET_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


class SwaggerAssets(StaticFiles):
    """Swagger UI's three files and nothing else of the package's folder (it also holds Python files)."""

    served = frozenset({SCRIPT, STYLE_SHEET, ICON})

    def __init__(self) -> None:
        super().__init__(packages=[ASSETS_PACKAGE])

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path not in self.served:
            raise NotFound(f"no documentation file {path!r}")
        response = await super().get_response(path, scope)
        response.headers.update(ASSET_HEADERS)
        return response


@router.api_route(DOCS_PATH, methods=["GET", "HEAD"], response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    """The interactive API reference."""
    root = request.scope.get("root_path", "").rstrip("/")  # behind a path prefix, as FastAPI's own page does
    assets = f"{root}{ASSETS_PATH}"
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{assets}/{SCRIPT}",
        swagger_css_url=f"{assets}/{STYLE_SHEET}",
        swagger_favicon_url=f"{assets}/{ICON}",
    )
    page.headers.update(PAGE_HEADERS)
    return page
