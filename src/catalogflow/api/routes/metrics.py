"""GET /metrics for Prometheus, and the middleware that counts and times every request.

``/metrics`` needs no token, like ``/api/health``: a scraper holds none, and the page
carries no secret (docs/security.md says why). Requests are labelled by their route
template (``/api/runs/{run_id}``), never by the concrete path, whose ids would make one
series per run; a path no route matches is ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalogflow.streams.metrics.api import API_REQUEST_SECONDS, API_REQUESTS
from catalogflow.streams.metrics.current import metrics as recorder

__all__ = ["METHODS", "UNMATCHED", "RequestMetrics", "route_label", "router"]

router = APIRouter(tags=["metrics"])

#: Methods labelled as themselves; any other is ``OTHER`` (the label stays bounded
#: whatever a client sends).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def route_label(scope: Scope) -> str:
    """The template of the route that answered (set in the scope by the router)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestMetrics:
    """ASGI middleware: ``catalogflow_api_requests_total`` by route, method and status,
    and ``catalogflow_api_request_seconds`` by route. An exception that escapes the app
    counts as a 500 (the server error middleware outside answers it so)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = route_label(scope)
            method = str(scope.get("method", "")).upper()
            backend = recorder()
            backend.inc(
                API_REQUESTS,
                route=route,
                method=method if method in METHODS else "OTHER",
                status=str(status),
            )
            backend.observe(API_REQUEST_SECONDS, time.perf_counter() - started, route=route)
