"""The API's own documentation pages, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served
with every asset from the node itself, so they work offline and under a strict CSP.

The Swagger UI and ReDoc bundles are the files the ``fastapi-offline`` package ships (Swagger UI
is Apache-2.0, ReDoc MIT; their licence notes are at the top of each bundle). The pages hold no
inline script: each loads its bundle and, for Swagger UI, a small start-up script served here.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response

from gateway.errors import NotFound

__all__ = ["DOCS_CSP", "router"]

router = APIRouter(include_in_schema=False)

# Swagger UI and ReDoc style their elements at run time (ReDoc writes <style> elements), and
# ReDoc searches in a worker started from a blob: URL; nothing else is loosened, and nothing
# may come from another origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": DOCS_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_BUNDLES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Relative URLs: the pages work behind a proxy that mounts the node under a path prefix.
_SWAGGER_START = """\
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
});
"""
_PAGE = """\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="docs/assets/favicon.png">
{head}
</head>
<body>
{body}
</body>
</html>
"""


def _page(title: str, head: str, body: str) -> HTMLResponse:
    html = _PAGE.format(title=title, head=head, body=body)
    return HTMLResponse(html, headers={**_HEADERS, "Cache-Control": "no-cache"})


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    """Swagger UI over this node's OpenAPI document."""
    return _page(
        "matgate API: Swagger UI",
        '<link rel="stylesheet" href="docs/assets/swagger-ui.css">',
        '<div id="swagger-ui"></div>\n'
        '<script src="docs/assets/swagger-ui-bundle.js"></script>\n'
        '<script src="docs/assets/swagger-start.js"></script>',
    )


@router.get("/redoc")
def redoc() -> HTMLResponse:
    """ReDoc over this node's OpenAPI document."""
    return _page(
        "matgate API: ReDoc",
        "",
        '<redoc spec-url="openapi.json"></redoc>\n'
        '<script src="docs/assets/redoc.standalone.js"></script>',
    )


@router.get("/docs/assets/swagger-start.js")
def swagger_start() -> Response:
    """The script that starts Swagger UI (kept out of the page, for the CSP)."""
    return Response(_SWAGGER_START, media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@router.get("/docs/assets/{name}")
def asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    """One of the bundled files (and nothing else: names come from a fixed list)."""
    media = _BUNDLES.get(name)
    if media is None:
        raise NotFound(f"no documentation asset {name!r}")
    cache = {"Cache-Control": "public, max-age=86400"}
    return Response(_bundle(name), media_type=media, headers={**_HEADERS, **cache})


@functools.cache
def _bundle(name: str) -> bytes:
    return files("fastapi_offline").joinpath("static", name).read_bytes()
