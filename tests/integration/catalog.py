"""Putting products on a real broker for a test, and waiting until a worker has them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.settings import Settings

from catalogflow.workerproc import WorkerProcess


def import_products(
    settings: Settings, worker: WorkerProcess, changes: Iterable[dict[str, Any]]
) -> None:
    """Publish ``changes`` and wait until the worker's products table holds them all."""
    producer = RecordProducer(settings)
    skus = set()
    for change in changes:
        producer.send("product-changes", change["sku"], change)
        skus.add(change["sku"])
    producer.flush()
    worker.wait_for("/products/", lambda a: a["count"] == len(skus))


def import_catalog(settings: Settings, worker: WorkerProcess, count: int) -> None:
    """The first ``count`` products of the sample catalog (a quarter Dry Cat Food)."""
    import_products(settings, worker, sample_changes(count))
