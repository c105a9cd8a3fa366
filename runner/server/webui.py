"""The web interface and the API docs, served by the server itself, offline.

The interface is a Vue application built from ``ui/`` (``npm run build``) into
``runner/server/web/ui``; the built files are committed, so ``pip install`` serves it
with no Node.js at run time (Prefect ships its UI the same way). It talks to the same
public REST API as scripts, plus the event stream (routes/events_stream.py).

Paths: ``/ui/...`` the application (any path under it that is not a file answers
``index.html``, so a deep link such as ``/ui/jobs/12`` opens that page); ``/`` sends
browsers to ``/ui/``; ``/docs`` (Swagger UI) and ``/redoc`` load their scripts from
``/apidocs/``, the assets of the pinned ``fastapi-offline`` package, never a CDN.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Scope

#: the built application (ui/ -> ``npm run build``).
UI_DIR = Path(__file__).parent / "web" / "ui"
UI_PATH = "/ui"
APIDOCS_DIR = Path(fastapi_offline.__file__).parent / "static"
APIDOCS_PATH = "/apidocs"

#: What the application may load: only its own files and its own API (the event stream
#: is same-origin ws:/wss:). Even if a job's output or tag slipped past Vue's escaping,
#: an injected <script> or inline handler would not run. Vuetify sets its theme with a
#: <style> element, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)


class SinglePageApp(StaticFiles):
    """Static files where an unknown path answers ``index.html`` (client-side routes).

    Hashed assets are cached for a year; ``index.html`` is revalidated on every load,
    so a server upgrade is picked up by the next page load.
    """

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or path.startswith("assets/"):
                raise
            response = await super().get_response("index.html", scope)
        else:
            if response.status_code == 404 and not path.startswith("assets/"):
                response = await super().get_response("index.html", scope)
        if path.startswith("assets/") and response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        else:
            response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def ui_available() -> bool:
    """Whether the built application is in the package (a checkout that never built it has none)."""
    return (UI_DIR / "index.html").is_file()


def install(app: FastAPI) -> None:
    """Serve the application at ``/ui/``, redirect ``/`` there, and the offline API docs.

    ``app`` must be made with ``docs_url=None, redoc_url=None`` (these replace them).
    """
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API (Swagger UI)",
            swagger_js_url=f"{APIDOCS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{APIDOCS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{APIDOCS_PATH}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} API (ReDoc)",
            redoc_js_url=f"{APIDOCS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{APIDOCS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    # compressed for a slow tunnel (the 1 MB bundle travels as ~260 kB); the API's own
    # answers are left alone, compressing them would cost the hot path CPU
    app.mount(APIDOCS_PATH, GZipMiddleware(StaticFiles(directory=APIDOCS_DIR)), name="apidocs")
    if ui_available():
        app.mount(UI_PATH, GZipMiddleware(SinglePageApp(directory=UI_DIR, html=True)), name="ui")
    else:

        @app.get(UI_PATH + "/{rest:path}", include_in_schema=False)
        def no_ui(rest: str = "") -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>tolu</title><p>This tolu was installed without its web "
                "interface (runner/server/web/ui is missing). Build it: <code>cd ui && npm ci && "
                "npm run build</code>. The API is at <a href='/docs'>/docs</a>.</p>",
                status_code=404,
            )
