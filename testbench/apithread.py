"""``catalogflow api`` in a thread, for the demo and tests in one process."""

from __future__ import annotations

import sqlalchemy as sa
from catalogflow.streams.settings import Settings

from catalogflow.api.app import create_app
from catalogflow.api.server import ServerThread


class ApiThread:
    """Serves ``create_app(settings, engine)`` at ``settings.api_host:api_port``."""

    def __init__(self, settings: Settings, engine: sa.Engine | None = None) -> None:
        self._thread = ServerThread(
            create_app(settings, engine), settings.api_host, settings.api_port
        )
        self.url = f"http://{settings.api_host}:{settings.api_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.url = self._thread.start(timeout)

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> ApiThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
