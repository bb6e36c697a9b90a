"""The interactive API docs, Swagger UI at /docs and ReDoc at /redoc, served from assets shipped
inside the installation (the `fastapi-offline` package's copies of swagger-ui-dist and redoc), so
they work on a machine with no route to the internet.

The pages carry a Content-Security-Policy that lets the browser load nothing from another
origin: whatever the bundles hold (ReDoc's footer asks a CDN for the Redocly logo, and hides it
when that fails) is never fetched.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH, REDOC_PATH, ASSETS_PATH = "/docs", "/redoc", "/docs/assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
ASSETS = Path(str(files("fastapi_offline") / "static"))

# Same origin only; inline scripts and styles are the pages' own (the UI's start-up and the
# styles the bundles inject), data: images are the bundles' icons, blob: workers ReDoc's search.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    )
)

SWAGGER_UI_PARAMETERS = {
    "validatorUrl": None,  # its default sends the document to a public validator
    "displayRequestDuration": True,
    "filter": True,
}


def _same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


def install(app: FastAPI) -> None:
    """Serve the docs pages and their assets. Create the app with `docs_url=None` and
    `redoc_url=None` (FastAPI's own pages load the assets from a CDN)."""
    assert app.openapi_url is not None
    openapi_url = app.openapi_url
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")

    # Plain routes, as FastAPI's own docs pages are: not operations of the API.
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _same_origin_only(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} API",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    async def swagger_ui_oauth2_redirect(request: Request) -> HTMLResponse:
        return _same_origin_only(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return _same_origin_only(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} API",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    app.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_PATH, swagger_ui_oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, include_in_schema=False)
