"""The Starlette application: the JSON API, five pages and their static files.

Why Starlette: a small, well-kept ASGI toolkit (the core FastAPI is built on) with a test
client, static files that refuse paths outside their directory, and nothing we would not use;
FastAPI's request models and OpenAPI add pydantic and start-up time for nine GET endpoints.

Every route is GET (HEAD): any other method is a 405, and the store is opened read-only.
Pages are static HTML; their scripts fetch ``/api/...`` and build the DOM with ``textContent``,
so a run named ``<script>`` is shown as text. The Content-Security-Policy allows scripts only
from this server, a second line of defence should that ever slip.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CkptstoreError, NoCheckpointFoundError
from .api import Api, BadRequest, json_response

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"

#: Page path -> its HTML file in ``static/``.
PAGES = {"/": "index.html", "/run": "run.html", "/checkpoint": "checkpoint.html", "/exports": "exports.html",
         "/aliases": "aliases.html", "/versions": "aliases.html"}  # the old address of the aliases page

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
     b"style-src 'self' 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` and a ``Server-Timing`` header to every response (pure ASGI:
    no buffering of bodies)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Server-Timing: the server's share of a request, shown by browsers' developer
                # tools (and read by benchmarks/ui.py).
                took = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS + [(b"server-timing", took)]
            await send(message)

        await self.app(scope, receive, with_headers)


def _api_route(endpoint: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """The endpoint with the store's errors turned into HTTP answers (sync: run in a thread)."""

    def handle(request: Request) -> Response:
        try:
            return endpoint(request)
        except BadRequest as exc:
            return json_response({"error": str(exc)}, 400)
        except (LookupError, NoCheckpointFoundError) as exc:  # unknown run, ref, alias
            return json_response({"error": str(exc)}, 404)
        except (ValueError, CkptstoreError) as exc:  # a malformed name or ref, a bad option
            return json_response({"error": str(exc) or type(exc).__name__}, 400)

    handle.__name__ = endpoint.__name__
    return handle


def _page(file: str) -> Callable[[Request], Any]:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC / file, media_type="text/html; charset=utf-8")

    return page


# The page a browser gets for an unknown address: laid out for a phone like the others (without
# the viewport line chromium draws a 980 px page and shrinks it), with the way back to the app.
NOT_FOUND_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not found · ckptstore</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/style.css">
</head>
<body>
<header><span class="brand">ckptstore</span><nav><a href="/">Runs</a><a href="/exports">Exports</a><a href="/aliases">Aliases</a></nav><span class="muted">read-only</span></header>
<main id="main">
<h1>Not found</h1>
<p class="error" id="not-found">{message}</p>
</main>
</body>
</html>
"""


async def _not_found(request: Request, exc: Exception) -> Response:
    message = f"no such page or endpoint: {request.url.path}"
    # A browser opening a page gets a page; the API and anything else (scripts, curl) get JSON.
    path = request.url.path
    wants_page = "text/html" in request.headers.get("accept", "") and not path.startswith(("/api/", "/static/"))
    if wants_page:
        return HTMLResponse(NOT_FOUND_PAGE.format(message=html.escape(message)), 404)
    return json_response({"error": message}, 404)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("error serving %s", request.url.path)
    return json_response({"error": f"{type(exc).__name__} (see the server's log)"}, 500)


def create_app(store: Store, *, allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The web app over ``store`` (open it with ``readonly=True``).

    ``allowed_hosts`` limits the Host header the app answers (``ckptstore ui`` passes the
    loopback names when bound to loopback, so that a web page elsewhere cannot reach the store
    through DNS rebinding); None answers any.
    """
    api = Api(store)
    routes: list[Any] = [Route(path, _api_route(fn), methods=["GET"]) for path, fn in api.routes()]
    routes += [Route(path, _page(file), methods=["GET"]) for path, file in PAGES.items()]
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
    middleware = [Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: _not_found, 500: _server_error},
    )
