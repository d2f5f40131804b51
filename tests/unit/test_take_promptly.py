"""``take_promptly`` (``streams/faust_workarounds.py``) over a faust channel: a batch is
handed over when it is full, or a linger after its first event, never larger than
asked, every event once and in order."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import faust
import pytest
from catalogflow.streams.faust_workarounds import take_promptly

#: Bound on every wait here: far above a short linger, far below a long one.
PATIENCE = 10.0


async def batches_of(values: list[int], size: int, linger: float) -> list[list[int]]:
    """The batches a stream taking ``size`` with ``linger`` hands over for ``values``,
    once every value arrived (or PATIENCE passed)."""
    app = faust.App("take-promptly-test", broker="kafka://127.0.0.1:1")  # never connects
    app.flow_control.resume()  # as a started app does
    channel: Any = app.channel(maxsize=len(values) + 1)
    stream = app.stream(channel)
    seen: list[list[int]] = []
    done = asyncio.Event()

    async def take() -> None:
        async for events in take_promptly(stream, size, linger):
            seen.append([cast(int, event.value) for event in events])
            if sum(map(len, seen)) == len(values):
                done.set()

    taking = asyncio.create_task(take())
    for value in values:
        await channel.send(value=value)
    with contextlib.suppress(TimeoutError):  # what arrived by then is the answer
        await asyncio.wait_for(done.wait(), PATIENCE)
    taking.cancel()
    return seen


def test_a_lone_event_is_handed_over_after_its_linger() -> None:
    # faust's take_events(100, within=PATIENCE * 2) would still be waiting.
    assert asyncio.run(batches_of([1], size=100, linger=0.01)) == [[1]]


def test_a_full_batch_is_handed_over_at_once_whatever_the_linger() -> None:
    # With a linger of an hour only a full batch can be handed over in time.
    assert asyncio.run(batches_of([1, 2, 3, 4], size=2, linger=3600)) == [[1, 2], [3, 4]]


@pytest.mark.parametrize("size", [1, 3, 64])
def test_every_event_arrives_once_in_order_in_batches_no_larger_than_asked(size: int) -> None:
    values = list(range(10))
    seen = asyncio.run(batches_of(values, size=size, linger=0.01))
    assert [value for batch in seen for value in batch] == values
    assert all(0 < len(batch) <= size for batch in seen)
