"""Sends from inside an agent, confirmed before the agent moves on.

faust acks an event once the agent asks for the next one; an agent that waits on
``Outbox.confirm()`` before that never lets an offset be committed ahead of the
messages it produced from it (at-least-once, nothing lost on a crash).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any


class Outbox:
    def __init__(self, topology: Any) -> None:
        self._topology = topology
        self._pending: list[Any] = []

    async def send(
        self,
        topic: str,
        key: str | None,
        record: Mapping[str, object],
        partition: int | None = None,
    ) -> None:
        self._pending.append(await self._topology.send(topic, key, record, partition))

    async def confirm(self) -> None:
        """Wait until the broker has every message sent so far."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
