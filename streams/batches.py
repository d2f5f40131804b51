"""How every catalogflow agent consumes its topic: a batch at a time.

faust acks the events of a batch (``take_promptly``, faust's ``take_events`` handing
a batch over as soon as it has events) when the agent asks for the next one,
so an agent that sends what a batch produced and waits for the broker's confirmation
(``Outbox.confirm``) before it asks never lets an offset be committed ahead of its
results; faust's own ``concurrency=N`` can (faust-streaming #606). Batching is also
what makes the bookkeeping cheap: one confirmation per batch instead of one per event,
and one table write per row and batch where a batch changes a row more than once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from catalogflow.streams.app import Topology, decode_or_dead_letter
from catalogflow.streams.faust_workarounds import exit_to_replay, take_promptly
from faust.types import EventT

R = TypeVar("R")


async def run_batches(
    stream: Any,  # a faust Stream; its type declares no take_events
    size: int,
    wait: float,
    handle: Callable[[list[EventT[Any]]], Awaitable[None]],
    what: str,
) -> None:
    """Hand ``handle`` up to ``size`` events at a time, each batch ``wait`` seconds
    after its first event (or when full). ``handle`` must turn every problem with an
    event into a result (an Error, a dead letter): an exception here would make faust
    ack the whole batch, so it can only mean the broker refused our sends, and the
    worker exits to replay the batch (``exit_to_replay``)."""
    async for events in take_promptly(stream, size, wait):
        try:
            await handle(events)
        except Exception:
            exit_to_replay(f"the results of a batch of {what} could not be sent")


async def decode_batch(
    topology: Topology,
    events: list[EventT[Any]],
    schema: type[R],
    agent: str,
    validate: Callable[[R], None] = lambda _: None,
) -> list[tuple[EventT[Any], R]]:
    """The batch's events with their decoded records, in order; each one that does not
    decode (or fails ``validate``) is dead-lettered with its coordinates and reason,
    confirmed before the batch is handled."""
    records: list[tuple[EventT[Any], R]] = []
    for event in events:
        record = await decode_or_dead_letter(topology, event, schema, agent, validate)
        if record is not None:
            records.append((event, record))
    return records
