"""Catalog agent: folds ``product-changes`` into the ``products`` snapshot table.

A thin adapter: decoding and dead-lettering live in ``streams.app.decoded``, the
merge rules in ``streams.products``. The table is keyed by SKU, the stream key, so
each partition's rows live with the worker that consumes that partition.
"""

from __future__ import annotations

from typing import Any

from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.products import apply_change, validate_change

AGENT_NAME = "catalog"


def register(topology: Topology) -> None:
    products = topology.products

    @topology.app.agent(topology.inputs["product-changes"], name=AGENT_NAME)
    async def catalog(stream: Any) -> None:
        async for _event, change in decoded(
            topology, stream, "ProductChanged", AGENT_NAME, validate_change
        ):
            products[change["sku"]] = apply_change(products.get(change["sku"]), change)
