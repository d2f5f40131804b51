"""Putting products on a real broker for a test, and waiting until a worker has them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.definitions import WorkflowDefinition, parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import ProductChanged
from catalogflow.streams.settings import Settings
from catalogflow.testbench.magento.simulator import (
    MagentoSimConfig,
    MagentoSimulatorThread,
    seed_sample,
)
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.engine_actions import TYPES


def sample_shop(count: int, config: MagentoSimConfig | None = None) -> MagentoSimulatorThread:
    """A started Magento simulator holding ``count`` sample products and the text
    attributes the seed workflow writes; the caller stops it."""
    shop = MagentoSimulatorThread(config or MagentoSimConfig())
    shop.start()
    seed_sample(shop.simulator, count)
    for code in ("shopping_title", "shopping_description"):
        shop.simulator.add_attribute(code, "text")
    return shop


def import_products(
    settings: Settings, worker: WorkerProcess, changes: Iterable[ProductChanged]
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


def chain_yaml(
    workflow_id: str,
    name: str = "Dry cat food chain",
    *,
    extract: dict[str, Any] | None = None,
    enrich: dict[str, Any] | None = None,
    translate: dict[str, Any] | None = None,
) -> str:
    """The three-step test chain over Dry Cat Food (tests.integration.engine_actions),
    each step reading what the one before produced; ``extract`` etc. are step settings."""
    steps: list[dict[str, Any]] = [
        {"id": "extract", "type": "test_extract", "reads": ["description"], "settings": extract},
        {"id": "enrich", "type": "test_enrich", "reads": ["name"], "settings": enrich},
        {"id": "translate", "type": "test_translate", "settings": translate},
    ]
    document = {
        "id": workflow_id,
        "name": name,
        "mode": "one_time",
        "trigger": {
            "all": [
                {"field": "category", "operator": "equals", "value": "Pet Food/Cat/Dry Cat Food"}
            ]
        },
        "actions": [{k: v for k, v in step.items() if v is not None} for step in steps],
    }
    return yaml.safe_dump(document, sort_keys=False)


def chain(workflow_id: str, name: str = "Dry cat food chain", **steps: Any) -> WorkflowDefinition:
    return parse_definition(
        chain_yaml(workflow_id, name, **steps),
        source=f"{workflow_id}.yaml",
        extra_action_types=TYPES,
    )
