"""Where catalogflow reads time: one :class:`Clock`, a real one and a manual twin.

Code that stamps records (``issued_at``, ``decided_at``, a task event's ``at``), ages
items or waits (the model rate limiter) takes a ``Clock`` instead of calling
``datetime.now`` or ``time.monotonic`` itself, so a unit test can set the time and move
it on by hand. Production runs on :class:`SystemClock`; tests on :class:`FakeClock`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]

# Where a FakeClock's wall time starts unless a test says otherwise (an arbitrary,
# fixed instant, so records stamped under it are the same on every run).
FAKE_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """Wall time for timestamps, monotonic seconds for durations, and a way to wait."""

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC (for timestamps in records)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a scale that never goes back (for durations and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``datetime.now(UTC)``, ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """Virtual time for tests: set by hand with :meth:`advance`, or moved on by
    ``sleep``, which returns as soon as the event loop has nothing else to do, with the
    clock moved to the sleeper's wake-up time.

    Wall time (:meth:`now`) is ``wall_start`` plus the virtual seconds gone by, so both
    scales move together. Concurrent sleepers wake in wake-time order (ties in call
    order) and each sees the time it asked for, as on a real clock, so a schedule of
    many tasks is reproduced exactly and instantly. "Nothing else to do" is approximated
    by letting the loop run ``settle_rounds`` iterations before each jump; code that
    keeps the loop busy longer than that (or waits on real I/O) sees time jump while it
    works.
    """

    def __init__(
        self,
        start: float = 0.0,
        *,
        wall_start: datetime = FAKE_EPOCH,
        settle_rounds: int = 20,
    ) -> None:
        self._start = start
        self._now = start
        self._wall_start = wall_start
        self._settle_rounds = settle_rounds
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        return self._wall_start + timedelta(seconds=self._now - self._start)

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (waking any sleeper that is now due)."""
        self._now += max(0.0, seconds)
        self._wake_due()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._sequence), future))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        await future

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def _drive(self) -> None:
        while True:
            for _ in range(self._settle_rounds):
                await asyncio.sleep(0)
            while self._sleepers and self._sleepers[0][2].done():  # cancelled sleepers
                heapq.heappop(self._sleepers)
            if not self._sleepers:
                return
            self._now = max(self._now, self._sleepers[0][0])
            self._wake_due()
