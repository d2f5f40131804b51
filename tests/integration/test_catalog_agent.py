"""The catalog agent on a real broker: builds the products table, and a restarted
worker rebuilds the same table from the changelog alone (memory store)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.admin import admin_client
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import ProductChanged
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import changelog_topic
from catalogflow.testbench.workerproc import WorkerProcess
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]  # not in __all__

pytestmark = pytest.mark.kafka

PRODUCTS = 1000


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_products_table_is_built_and_rebuilt_after_restart(
    settings: Settings, start_worker: Callable[..., WorkerProcess], store: str, tmp_path: Path
) -> None:
    """The restarted worker has no local state (memory, or a fresh RocksDB directory),
    so everything it serves comes from the compacted changelog."""
    producer = RecordProducer(settings)
    changes = list(sample_changes(PRODUCTS))
    for change in changes:
        producer.send("product-changes", change["sku"], change)
    # A later update to one product: the table must hold the merged result.
    update: ProductChanged = {
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

    worker = start_worker(store=store, data_dir=tmp_path / "first")
    built = worker.wait_for("/products/", lambda a: a["count"] == PRODUCTS)
    first = worker.wait_for("/products/PF-000000/", lambda a: a.get("version") == 2)
    assert first["status"] == "disabled"
    assert first["categories"] == ["Pet Food/Cat/Dry Cat Food"]
    assert {"attribute": "name", "locale": "de_DE", "scope": "de"}.items() <= next(
        v for v in first["values"] if v["locale"] == "de_DE"
    ).items()
    built = worker.get("/products/")  # settled: the update is in
    worker.stop()

    restarted = start_worker(store=store, data_dir=tmp_path / "second")
    rebuilt = restarted.wait_for("/products/", lambda a: a["count"] == PRODUCTS)
    assert rebuilt["digest"] == built["digest"]
    assert restarted.get("/products/PF-000999/")["sku"] == "PF-000999"


def test_products_changelog_is_compacted(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker()
    admin = admin_client(settings)
    changelog = changelog_topic(settings, "products")
    deadline = time.monotonic() + 30  # faust declares it while the worker starts up
    while changelog not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    resource = ConfigResource("topic", changelog)
    config = admin.describe_configs([resource])[resource].result(timeout=30)
    assert config["cleanup.policy"].value == "compact"
    assert len(admin.list_topics(changelog, timeout=30).topics[changelog].partitions) == 4
