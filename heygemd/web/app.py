"""The web app: the page, /api/status, /metrics and a job's pictures. Read-only: every route
answers GET (and HEAD) only; nothing here writes where the daemon works.

Access: on a loopback address anyone on the machine may look; on any other address a token
is required (``[web] token``): an ``Authorization: Bearer`` header (Prometheus' bearer_token),
or the page opened once as ``/?token=...``, which sets a cookie and drops it from the address.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from heygemd.errors import ConfigError
from heygemd.settings import Settings, WebSettings
from heygemd.web import data
from heygemd.web.metrics import StoreCollector

COOKIE = "heygemd_token"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def split_listen(listen: str) -> tuple[str, int]:
    """'127.0.0.1:8750' / '[::1]:8750' / '0.0.0.0:80' -> (host, port) (pure)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"config error: web.listen: expected HOST:PORT (got {listen!r})")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_access(web: WebSettings) -> None:
    """Refuse to serve beyond this machine without a token (ConfigError, one line)."""
    host, _ = split_listen(web.listen)
    if not is_loopback(host) and not web.token:
        raise ConfigError(f"config error: web.listen: {web.listen} reaches beyond this machine; "
                          "set web.token (or HEYGEMD_WEB__TOKEN) so that only people who have "
                          "it can see the page")


class TokenGate(BaseHTTPMiddleware):
    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    def _holds(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        offered = request.query_params.get("token")
        if offered is not None and self._holds(offered):  # remember, and drop it from the URL
            response = RedirectResponse(request.url.remove_query_params("token"), 303)
            response.set_cookie(COOKIE, offered, httponly=True, samesite="strict")
            return response
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        if self._holds(bearer) or self._holds(request.cookies.get(COOKIE)):
            return await call_next(request)
        return PlainTextResponse("a token is needed: open the page as /?token=...", 401)


class Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def _asset(name: str) -> str:
    return resources.files("heygemd.web").joinpath(name).read_text(encoding="utf-8")


def create_app(settings: Settings) -> Starlette:
    """The app over ``settings``' folders (read-only)."""
    check_access(settings.web)
    started = time.time()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(settings))
    page, script, style = (_asset("templates/index.html"), _asset("static/app.js"),
                           _asset("static/style.css"))

    async def index(_request: Request) -> Response:
        return HTMLResponse(page)

    async def app_js(_request: Request) -> Response:
        return Response(script, media_type="text/javascript")

    async def style_css(_request: Request) -> Response:
        return Response(style, media_type="text/css")

    async def status(_request: Request) -> Response:
        return JSONResponse(data.page_data(settings, started))

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def job_file(request: Request) -> Response:
        path = data.job_file(settings, request.path_params["job_id"],
                             request.path_params["index"])
        if path is None:
            return PlainTextResponse("not found", 404)
        return FileResponse(path, media_type="image/jpeg")

    routes = [
        Route("/", index), Route("/static/app.js", app_js), Route("/static/style.css", style_css),
        Route("/api/status", status), Route("/metrics", metrics),
        Route("/files/{job_id:str}/{index:int}", job_file),
    ]
    host, _ = split_listen(settings.web.listen)
    # Without a token only this machine's names are answered (a page elsewhere cannot rebind
    # its own name to 127.0.0.1 and read this one); with a token, any name the LAN uses.
    hosts = ["*"] if settings.web.token else ["localhost", "127.0.0.1", "::1", "[::1]", host]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts), Middleware(Headers)]
    if settings.web.token:
        middleware.append(Middleware(TokenGate, token=settings.web.token))
    return Starlette(routes=routes, middleware=middleware)
