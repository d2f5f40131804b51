"""Serving a loopback test server, and running it on its own event loop in a
background thread.

The simulators (LLM, Magento) are asyncio servers; synchronous tests, the demo and
workers in other processes need them running while the caller's thread goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Protocol, Self

from aiohttp import web
from catalogflow.streams.errors import CatalogflowError


class Server(Protocol):
    async def start(self, host: str, port: int) -> str: ...

    async def stop(self) -> None: ...


class ServerThread:
    """Starts ``server`` in a daemon thread; ``url`` is where it listens."""

    #: Raised when the thread is used while not running.
    not_running: type[CatalogflowError] = CatalogflowError

    def __init__(self, server: Server, host: str, port: int, name: str) -> None:
        self._server = server
        self._host, self._port, self._name = host, port, name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise self.not_running(f"the {self._name} thread is not running")
        return self._url

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()
        try:
            self._url = self._call(self._server.start(self._host, self._port))
        except BaseException:
            self._shutdown_loop()
            raise
        return self._url

    def stop(self) -> None:
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):
            self._call(self._server.stop())
        self._shutdown_loop()
        self._url = None

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the server's loop and wait for its result."""
        if self._loop is None:
            coro.close()
            raise self.not_running(f"the {self._name} thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _shutdown_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join()
        self._loop, self._thread = None, None


async def listen(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` (0 = any free port); the runner and the base URL.
    Raises ``OSError`` when the address cannot be bound (the runner is cleaned up)."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{shown}:{bound[1]}"
