"""Catalog agent: folds ``product-changes`` into the ``products`` snapshot table and
offers each changed product to the running continuous workflows.

A thin adapter: decoding and dead-lettering live in ``streams.app.decoded``, the
merge rules in ``streams.products``, task creation in ``agents.trigger``. The table
is keyed by SKU, the stream key, so each partition's rows live with the worker that
consumes that partition.
"""

from __future__ import annotations

from typing import Any

from catalogflow.agents.trigger import Trigger
from catalogflow.streams.app import Topology, decoded, origin_of
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.products import apply_change, validate_change
from catalogflow.streams.records import ProductChanged

AGENT_NAME = "catalog"


def register(topology: Topology) -> None:
    products = topology.products
    trigger = Trigger(topology)

    @topology.app.agent(topology.inputs["product-changes"], name=AGENT_NAME)
    async def catalog(stream: Any) -> None:
        async for event, change in decoded(
            topology, stream, ProductChanged, AGENT_NAME, validate_change
        ):
            snapshot = apply_change(products.get(change["sku"]), change)
            products[change["sku"]] = snapshot
            if change["author"]["kind"] == "CATALOGFLOW":
                # Our own write coming back: never a reason to run again.
                trigger.rebaseline(snapshot)
                continue
            outbox = Outbox(topology)
            await trigger.on_product(outbox, snapshot, topology.clock.now(), origin_of(event))
            await outbox.confirm()
