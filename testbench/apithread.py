"""``catalogflow api`` in a thread (uvicorn), for the demo and tests in one process."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa
import uvicorn
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings

from catalogflow.api.app import create_app


class ApiThread:
    """Serves ``create_app(settings, engine)`` at ``settings.api_host:api_port``."""

    def __init__(self, settings: Settings, engine: sa.Engine | None = None) -> None:
        self.settings = settings
        config = uvicorn.Config(
            create_app(settings, engine),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise CatalogflowError(f"the API did not start at {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)

    def __enter__(self) -> ApiThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
