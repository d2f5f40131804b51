"""Catalog agent: folds ``product-changes`` into the ``products`` snapshot table and
offers each changed product to the running continuous workflows.

A thin adapter: batching, decoding and dead-lettering live in ``streams.batches``, the
merge rules in ``streams.products``, task creation in ``agents.trigger``. The table
is keyed by SKU, the stream key, so each partition's rows live with the worker that
consumes that partition.
"""

from __future__ import annotations

from typing import Any

from catalogflow.agents.trigger import Trigger
from catalogflow.streams.app import Topology, origin_of
from catalogflow.streams.batches import decode_batch, run_batches
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.products import apply_change, validate_change
from catalogflow.streams.records import ProductChanged
from faust.types import EventT

AGENT_NAME = "catalog"


#: Changes the agent takes at once: a table write each, and tasks for continuous runs.
CHANGES_PER_BATCH = 256


def register(topology: Topology) -> None:
    products = topology.products
    trigger = Trigger(topology)

    async def fold(events: list[EventT[Any]]) -> None:
        outbox = Outbox(topology)
        for event, change in await decode_batch(
            topology, events, ProductChanged, AGENT_NAME, validate_change
        ):
            snapshot = apply_change(products.get(change["sku"]), change)
            products[change["sku"]] = snapshot
            if change["author"]["kind"] == "CATALOGFLOW":
                # Our own write coming back: never a reason to run again.
                trigger.rebaseline(snapshot)
                continue
            await trigger.on_product(outbox, snapshot, topology.clock.now(), origin_of(event))
        await outbox.confirm()

    @topology.app.agent(topology.inputs["product-changes"], name=AGENT_NAME)
    async def catalog(stream: Any) -> None:
        wait = topology.settings.batch_wait
        await run_batches(stream, CHANGES_PER_BATCH, wait, fold, "product changes")
