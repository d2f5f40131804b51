"""Security headers on every console page: a Content-Security-Policy that allows only
the console's own script and style files (no inline script, no eval, no other origin),
no framing, no MIME sniffing, no referrer to other sites, and no caching of pages that
show catalog data. The JSON API and /metrics are left as they are."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}
#: Paths that are not console pages (the API keeps its own answers; /docs loads
#: FastAPI's Swagger UI, which needs inline script).
NOT_CONSOLE = ("/api/", "/metrics", "/docs", "/redoc", "/openapi.json")


def is_console(path: str) -> bool:
    return not path.startswith(NOT_CONSOLE)


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to console responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        static = scope.get("path", "").startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
