"""Running the API under uvicorn: in the foreground (``catalogflow api``) or in a thread
(tests, benchmarks and the demo, which need a real port without a child process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from catalogflow.streams.errors import CatalogflowError


def config(app: FastAPI, host: str, port: int, *, access_log: bool = True) -> uvicorn.Config:
    # log_config=None: our logging setup, not uvicorn's. Its access log line is
    # "client - method path status": no headers, so never the Authorization token.
    return uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=access_log, server_header=False
    )


def serve(app: FastAPI, host: str, port: int) -> None:
    uvicorn.Server(config(app, host, port)).run()


class ServerThread:
    """The app under uvicorn in a daemon thread (port 0: a free one)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._server = uvicorn.Server(config(app, host, port, access_log=False))
        self._thread = threading.Thread(
            target=self._server.run, name="catalogflow-api", daemon=True
        )

    def start(self, timeout: float = 10.0) -> str:
        """Start and wait until it listens; returns its base URL."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise CatalogflowError(f"the API did not start on {self.host} within {timeout} s")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def stop(self, timeout: float = 30.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", *, timeout: float = 10.0) -> Iterator[str]:
    """The app served on a free port in a daemon thread; yields its base URL."""
    thread = ServerThread(app, host)
    url = thread.start(timeout)
    try:
        yield url
    finally:
        thread.stop(timeout)
