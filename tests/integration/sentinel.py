"""Sentinels: later events that prove a worker has dealt with everything before them.

A test that asserts "nothing (more) happened" first waits for a sentinel that travels
behind the events under test on the same partitions; once the sentinel is visible,
anything those events caused would be visible too. No fixed sleep guesses how long
"by now" is.
"""

from __future__ import annotations

import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.partitioner import partition_for
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import chain_yaml
from tests.integration.engine_actions import TYPES

DRY_CAT_FOOD = "Pet Food/Cat/Dry Cat Food"


def one_per_partition(settings: Settings, catalog: int) -> list[str]:
    """A Dry Cat Food SKU of the first ``catalog`` sample products for every partition."""
    chosen: dict[int, str] = {}
    for change in sample_changes(catalog):
        partition = partition_for(change["sku"], settings.partitions)
        if DRY_CAT_FOOD in (change["categories"] or ()) and partition not in chosen:
            chosen[partition] = change["sku"]
    assert len(chosen) == settings.partitions, f"no Dry Cat Food on some partition: {chosen}"
    return [chosen[p] for p in sorted(chosen)]


def run_sentinel(
    settings: Settings, worker: WorkerProcess, workflow_id: str, skus: list[str]
) -> None:
    """Run the three-step test chain over ``skus`` (one per partition) to COMPLETED.

    Its tasks go through every task topic and ``task-events`` partition behind whatever
    was there before, so once the run is COMPLETED the worker has taken every earlier
    task and task event, and its views show them."""
    document = yaml.safe_load(chain_yaml(workflow_id, "Sentinel chain"))
    document["trigger"] = {"all": [{"field": "sku", "operator": "in_list", "value": skus}]}
    definition = parse_definition(
        yaml.safe_dump(document), source=f"{workflow_id}.yaml", extra_action_types=TYPES
    )
    apply_definition(settings, definition, f"{workflow_id}.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=120)
