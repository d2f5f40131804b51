"""A sync target added as a plug-in, on the real broker: the worker loads it from the
``sync_plugins`` setting, the router plans its requests, and the sink writes the
approved values of a real run to it, with its own SyncResults and ledger rows; no
module of catalogflow names it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml
from catalogflow.connectors.targets.registry import load_targets
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.reader import read_latest
from catalogflow.streams.records import SyncLedgerEntry, SyncResult
from catalogflow.streams.settings import Settings
from catalogflow.streams.sync import approved_values, ledger_key, value_hash
from catalogflow.streams.topics import changelog_topic
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration import jsonl_target
from tests.integration.catalog import chain_yaml, import_catalog
from tests.integration.engine_actions import TYPES

pytestmark = pytest.mark.kafka


def test_a_plugin_target_receives_the_approved_values_with_its_own_results_and_ledger(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = settings.replace(sync_plugins=jsonl_target.MODULE)
    worker = start_worker(sync_plugins=jsonl_target.MODULE)
    import_catalog(settings, worker, 8)  # 2 Dry Cat Food products
    document = yaml.safe_load(chain_yaml("jsonl-sync"))
    document["sync"] = {"targets": [jsonl_target.NAME]}
    known = load_targets(settings).names  # what `workflow apply` checks the names against
    definition = parse_definition(yaml.safe_dump(document), "jsonl-sync.yaml", TYPES, known)
    apply_definition(settings, definition, "jsonl-sync.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert run["counts"] == {"SYNCED": 2}, run

    tasks = {t["sku"]: t for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]}
    expected = {
        sku: {
            field + (f"@{locale}" if locale else ""): value
            for (field, locale), value in approved_values(task).items()
        }
        for sku, task in tasks.items()
    }
    assert all(expected.values()), expected
    lines = jsonl_target.written(settings)
    assert {line["sku"]: line["values"] for line in lines} == expected
    assert len(lines) == len(tasks)  # one request per product, written once
    for task in tasks.values():
        assert f"{jsonl_target.NAME}/{jsonl_target.SCOPE} SYNCED" in task["reason"], task

    results = read_latest(settings, settings.topic("sync-results"), SyncResult)
    assert {sku: r["target"] for sku, r in results.items()} == dict.fromkeys(tasks, "jsonl")
    for sku, result in results.items():
        assert result["status"] == "SYNCED"
        assert {f["attribute"]: f["status"] for f in result["fields"]} == dict.fromkeys(
            expected[sku], "SYNCED"
        )

    ledger = read_latest(settings, changelog_topic(settings, "sync-ledger"), SyncLedgerEntry)
    assert ledger == {
        ledger_key(sku, jsonl_target.NAME, jsonl_target.SCOPE, attribute): {
            "sku": sku,
            "target": jsonl_target.NAME,
            "store_scope": jsonl_target.SCOPE,
            "attribute": attribute,
            "value_hash": value_hash(value),
            "request_id": results[sku]["request_id"],
            "at": results[sku]["at"],
        }
        for sku, values in expected.items()
        for attribute, value in values.items()
    }
