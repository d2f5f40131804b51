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


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", *, timeout: float = 10.0) -> Iterator[str]:
    """The app served on a free port in a daemon thread; yields its base URL."""
    server = uvicorn.Server(config(app, host, 0, access_log=False))
    thread = threading.Thread(target=server.run, name="catalogflow-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise CatalogflowError(f"the API did not start on {host} within {timeout} s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
