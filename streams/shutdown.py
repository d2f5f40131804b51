"""Closes the worker's HTTP clients when it stops.

An aiohttp session or an httpx client left open when the event loop ends is
reported by its library at exit ("Unclosed client session", "Unclosed connector")
and leaks its sockets until then. Each client registers its close here; faust sends
``on_before_shutdown`` once the consumer is stopped and the streams are drained, so
no event is still using a client when it closes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust

log = logging.getLogger(__name__)

Close = Callable[[], Awaitable[None]]


def close_on_shutdown(app: faust.App, what: str, close: Close) -> None:
    """Call ``close`` when ``app`` stops; ``what`` names the client in a failure."""

    async def on_before_shutdown(_app: Any, **_: Any) -> None:
        try:
            await close()
        except Exception as exc:  # one client failing to close must not keep the others open
            log.warning("could not close %s while stopping: %s", what, exc)

    # cast: mode's handler type spells its arguments with mypy_extensions, which this
    # mypy does not match against any coroutine function.
    app.on_before_shutdown.connect(cast(Any, on_before_shutdown))
