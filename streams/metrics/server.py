"""``/metrics`` and ``/health`` for a process without a web server of its own (the
projector): a threaded WSGI server in a daemon thread, on the default registry.

The worker has faust's web server and the API has FastAPI; this is for the rest.
Port 0 binds a free port, read back from :attr:`MetricsServer.port`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from catalogflow.streams.errors import CatalogflowError
from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["MetricsServer"]

Health = Callable[[], dict[str, object]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _QuietHandler(WSGIRequestHandler):
    """No access line on stderr for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """Serves ``/metrics`` (the default registry) and ``/health`` (``health()`` as JSON);
    anything else is a 404."""

    def __init__(self, host: str, port: int, health: Health) -> None:
        self._metrics = make_wsgi_app(REGISTRY)
        self._health = health
        try:
            self._server = make_server(
                host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise CatalogflowError(f"cannot serve /metrics on {host}:{port}: {exc}") from exc
        self.host = host
        self.port: int = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "")).rstrip("/") or "/"
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics(environ, start_response)
            return body
        if path == "/health":
            payload = json.dumps(self._health()).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [payload]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /health\n"]
