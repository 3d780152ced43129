"""An API surface's docs page: Swagger UI from files shipped in the package, so it works offline, under a strict CSP.

The Swagger UI files are vendored from npm in ``static/swagger-ui/`` (its README says which version
and how to update it); ``static/docs.js`` starts it, kept out of the page so no inline script runs.
"""

from __future__ import annotations

import hashlib
from functools import cache
from html import escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).parent / "static"
# Served name -> (file under STATIC, media type).
ASSETS = {
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "docs.js": ("docs.js", "text/javascript; charset=utf-8"),
}
# Asset URLs carry their content's digest, so a year's caching never serves a stale file after an upgrade.
ASSET_CACHE = "public, max-age=31536000, immutable"
# Everything from this origin and nothing inline: Swagger UI needs data: and blob: only for images.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{css}"></head>
<body><div id="ui" data-spec="{spec}"></div>
<script src="{bundle}"></script>
<script src="{start}"></script>
</body></html>
"""


@cache
def _digest(name: str) -> str:
    return hashlib.sha256((STATIC / ASSETS[name][0]).read_bytes()).hexdigest()[:16]


def _asset_route(path: str, name: str) -> Route:
    file, media_type = ASSETS[name]

    async def asset(request: Request) -> Response:
        headers = {"Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"}
        return FileResponse(STATIC / file, media_type=media_type, headers=headers)

    return Route(path, asset)


def docs_routes(*, title: str, spec: str, at: str = "") -> list[Route]:
    """``{at}/docs`` rendering the OpenAPI document at ``spec``, and the files it loads under ``{at}/docs/assets/``."""
    url = {name: f"{at}/docs/assets/{name}?v={_digest(name)}" for name in ASSETS}
    page = PAGE.format(
        title=escape(title),
        spec=escape(spec),
        css=escape(url["swagger-ui.css"]),
        bundle=escape(url["swagger-ui-bundle.js"]),
        start=escape(url["docs.js"]),
    )
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}

    async def docs(request: Request) -> Response:
        return HTMLResponse(page, headers=headers)

    return [Route(f"{at}/docs", docs), *(_asset_route(f"{at}/docs/assets/{name}", name) for name in ASSETS)]
