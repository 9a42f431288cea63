"""/docs (Swagger UI) and /redoc served from this app alone, so they work with no network.

FastAPI's own pages load their code from a CDN and start Swagger UI with an inline script. Here
the assets come from the pinned `fastapi-offline` package (its static files only: Swagger UI,
ReDoc and FastAPI's favicon, 2.8 MB installed), and the start-up script is a static file of ours,
so the pages' Content-Security-Policy needs neither another host nor 'unsafe-inline' for scripts.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"  # the package's files: swagger-ui-bundle.js, swagger-ui.css, redoc...
SWAGGER_INIT_URL = "/static/swagger-init.js"  # ours: reads the schema URL from the page

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{root}{assets}/favicon.png">
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{root}{openapi}"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script src="{root}{init}"></script>
</body>
</html>
"""

# ReDoc's standalone bundle starts itself on the <redoc> element: no script of ours needed.
REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{root}{assets}/favicon.png">
</head>
<body>
<redoc spec-url="{root}{openapi}"></redoc>
<script src="{root}{assets}/redoc.standalone.js"></script>
</body>
</html>
"""


def add_api_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc for `app`, created with docs_url=None and redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="apidocs-assets")

    def page(template: str, request: Request) -> HTMLResponse:
        # root_path: behind a proxy that serves the app under a prefix, links keep working.
        return HTMLResponse(template.format(
            title=escape(app.title), root=escape(request.scope.get("root_path", "")),
            assets=ASSETS_URL, openapi=escape(app.openapi_url or "/openapi.json"),
            init=SWAGGER_INIT_URL))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return page(SWAGGER_PAGE, request)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return page(REDOC_PAGE, request)
