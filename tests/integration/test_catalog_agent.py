"""The catalog agent on a real broker: builds the products table, and a restarted
worker rebuilds the same table from the changelog alone (memory store)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.settings import Settings

from catalogflow.workerproc import WorkerProcess

pytestmark = pytest.mark.kafka

PRODUCTS = 1000


def test_products_table_is_built_and_rebuilt_after_restart(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    producer = RecordProducer(settings)
    changes = list(sample_changes(PRODUCTS))
    for change in changes:
        producer.send("product-changes", change["sku"], change)
    # A later update to one product: the table must hold the merged result.
    update = {
        **changes[0],
        "event_id": "update-1",
        "change_type": "UPDATED",
        "values": [
            {"attribute": "name", "locale": "de_DE", "scope": "de", "value": "Trockenfutter"}
        ],
        "categories": None,
        "supplier": None,
        "status": "disabled",
        "family": None,
    }
    producer.send("product-changes", update["sku"], update)
    assert producer.flush() == PRODUCTS + 1

    worker = start_worker()
    built = worker.wait_for("/products/", lambda a: a["count"] == PRODUCTS)
    first = worker.wait_for("/products/PF-000000/", lambda a: a.get("version") == 2)
    assert first["status"] == "disabled"
    assert first["categories"] == ["Pet Food/Cat/Dry Cat Food"]
    assert {"attribute": "name", "locale": "de_DE", "scope": "de"}.items() <= next(
        v for v in first["values"] if v["locale"] == "de_DE"
    ).items()
    built = worker.get("/products/")  # settled: the update is in
    worker.stop()

    restarted = start_worker()
    rebuilt = restarted.wait_for("/products/", lambda a: a["count"] == PRODUCTS)
    assert rebuilt["digest"] == built["digest"]
    assert restarted.get("/products/PF-000999/")["sku"] == "PF-000999"
