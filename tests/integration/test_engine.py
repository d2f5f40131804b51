"""The workflow engine on a real broker: one-time runs over the seed example's
shape, a three-step chain that carries outputs forward, counts, pause and resume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, control_run, retry_failed, start_run
from catalogflow.streams.definitions import WorkflowDefinition, parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.records import ProductChanged, Value
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import chain, import_catalog
from tests.integration.engine_actions import TYPES
from tests.integration.sentinel import one_per_partition, run_sentinel

pytestmark = pytest.mark.kafka

CATALOG = 2000  # a quarter of the sample catalog is Dry Cat Food: 500 matching products
MATCHING = CATALOG // 4


def dry_chain(workflow_id: str = "dry-cat-chain", delay: float = 0.0) -> WorkflowDefinition:
    return chain(workflow_id, extract={"delay": delay})


def run_of(worker: WorkerProcess, run_id: str) -> Any:
    answer = worker.get(f"/runs/{run_id}/")
    return None if "error" in answer else answer


def test_one_time_run_creates_one_task_per_match_and_chains_outputs(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, CATALOG)
    definition = dry_chain()
    apply_definition(settings, definition, "dry-cat-chain.yaml", "test")

    run_id = start_run(settings, definition.id, "test")
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=240)

    assert run["tasks_created"] == MATCHING
    assert run["partitions_scanned"] == settings.partitions
    assert run["counts"] == {"COMPLETED": MATCHING}
    assert run["action_counts"] == {"translate:COMPLETED": MATCHING}
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    assert len(tasks) == MATCHING
    assert all(t["sku"] and t["status"] == "COMPLETED" for t in tasks)
    one = next(t for t in tasks if t["sku"] == "PF-000000")
    flavor, title, german = (output["fields"][0] for output in one["outputs"])
    assert flavor["field"] == "flavor" and flavor["reasoning"]
    assert title["value"].endswith(f"| {flavor['value']}")  # step 2 read step 1
    assert german == {**german, "locale": "de_DE", "value": f"DE {title['value']}"}  # step 3
    # One event per step outcome: these steps end well before `running_after`, so no
    # RUNNING is reported for them.
    assert [h["status"] for h in one["history"]] == ["WAITING", "WAITING", "WAITING", "COMPLETED"]


def test_pause_holds_new_work_and_resume_finishes_without_loss_or_duplicates(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(action_batch_size=10, action_concurrency=5)
    import_catalog(settings, worker, CATALOG)
    # 500 extractions of 0.2 s, five at a time: the run takes ~20 s, so the PAUSE (a CLI
    # start and a command topic away) lands while most of it is still to come, however
    # slow the machine (with 0.05 s the run could finish before the PAUSE arrived).
    definition = dry_chain("dry-cat-pause", delay=0.2)
    apply_definition(settings, definition, "dry-cat-pause.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    worker.wait_for(
        f"/runs/{run_id}/", lambda r: r.get("counts", {}).get("COMPLETED", 0) >= 5, timeout=120
    )

    control_run(settings, definition.id, run_id, "PAUSE", "test")
    worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "PAUSED")
    # In-flight batches drain and every queued task is parked: a sentinel run behind
    # them on every partition shows when the worker and its views are past them. Then
    # nothing starts any more, up to a second sentinel.
    sentinels = one_per_partition(settings, CATALOG)
    run_sentinel(settings, worker, "sentinel-after-pause", sentinels)
    settled = started_count(worker, run_id)
    run_sentinel(settings, worker, "sentinel-while-paused", sentinels)
    paused = run_of(worker, run_id)
    assert started_count(worker, run_id) == settled
    assert paused["status"] == "PAUSED"
    assert paused["counts"].get("RUNNING", 0) == 0
    assert paused["counts"].get("PAUSED", 0) > 0
    assert paused["counts"].get("COMPLETED", 0) < MATCHING

    control_run(settings, definition.id, run_id, "RESUME", "test")
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=240)
    assert run["counts"] == {"COMPLETED": MATCHING}
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    assert sorted(t["sku"] for t in tasks) == sorted({t["sku"] for t in tasks})
    assert len(tasks) == MATCHING


def started_count(worker: WorkerProcess, run_id: str) -> int:
    """How many transitions other than parking the run's tasks went through so far:
    while the run is paused, a task can only be parked."""
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    return sum(1 for t in tasks for h in t["history"] if h["status"] != "PAUSED")


def continuous_chain() -> WorkflowDefinition:
    text = dry_chain("dry-cat-continuous").to_dict()
    return WorkflowDefinition.from_dict({**text, "mode": "continuous"})


def update(sku: str, event_id: str, attribute: str, value: Value) -> ProductChanged:
    base = next(sample_changes(1, start=int(sku.removeprefix("PF-"))))
    return {
        **base,
        "event_id": event_id,
        "change_type": "UPDATED",
        "author": {"kind": "PERSON", "id": "anna", "name": None},
        "values": [{"attribute": attribute, "locale": None, "scope": None, "value": value}],
        "categories": None,
        "supplier": None,
        "status": None,
        "family": None,
    }


def test_continuous_run_reacts_to_new_and_changed_products_only(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, count=200)
    definition = continuous_chain()
    apply_definition(settings, definition, "dry-cat-continuous.yaml", "test")
    run_id = start_run(settings, definition.id, "test")

    def done(n: int) -> Callable[[Any], bool]:
        return lambda run: bool(run.get("counts", {}).get("COMPLETED", 0) == n)

    worker.wait_for(f"/runs/{run_id}/", done(50))  # the products matching at start

    producer = RecordProducer(settings)
    new = next(sample_changes(1, start=900_000))  # a Dry Cat Food product imported later
    producer.send("product-changes", new["sku"], new)
    # Same SKU, so in this order: a field no action reads, then one the first reads.
    producer.send("product-changes", "PF-000000", update("PF-000000", "u1", "price", 1.5))
    producer.send(
        "product-changes",
        "PF-000000",
        update("PF-000000", "u2", "description", "<p>Now with real tuna for adult cats.</p>"),
    )
    # Our own sync writing back must not trigger anything either.
    own = update("PF-000004", "u3", "description", "<p>Salmon for kittens.</p>")
    producer.send(
        "product-changes", "PF-000004", {**own, "author": {**own["author"], "kind": "CATALOGFLOW"}}
    )
    producer.flush()
    worker.wait_for(f"/runs/{run_id}/", done(52))

    # Sentinels: a later change that does start a task, on the same products (so on
    # the same partitions, behind the changes above). Once their tasks are done, a task
    # wrongly started by a change above would be in the run too.
    sentinel = "<p>Now with chicken for senior cats.</p>"
    for sku in ("PF-000000", "PF-000004"):
        producer.send("product-changes", sku, update(sku, f"s-{sku}", "description", sentinel))
    producer.flush()

    def sentinels_done(answer: Any) -> bool:
        chicken = [
            t
            for t in answer["tasks"]
            if t["status"] == "COMPLETED" and t["outputs"][0]["fields"][0]["value"] == "Chicken"
        ]
        return {t["sku"] for t in chicken} >= {"PF-000000", "PF-000004"}

    tasks = worker.wait_for(f"/runs/{run_id}/tasks/", sentinels_done)["tasks"]
    by_sku: dict[str, list[Any]] = {}
    for task in tasks:
        by_sku.setdefault(task["sku"], []).append(task)
    assert len(by_sku[new["sku"]]) == 1
    assert len(by_sku["PF-000000"]) == 3  # start, description, sentinel: price ignored
    flavors = sorted(t["outputs"][0]["fields"][0]["value"] for t in by_sku["PF-000000"])
    assert "Tuna" in flavors  # the second task read the changed description
    assert len(by_sku["PF-000004"]) == 2  # start, sentinel: our own write did not trigger
    run = worker.wait_for(f"/runs/{run_id}/", done(54))
    assert run["status"] == "RUNNING"  # continuous runs do not end by themselves
    assert run["tasks_created"] == 54


def test_each_failure_category_is_recorded_and_retry_failed_reruns_by_category(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, count=200)
    producer = RecordProducer(settings)
    producer.send("product-changes", "PF-000016", update("PF-000016", "u1", "description", " "))
    producer.flush()
    worker.wait_for("/products/PF-000016/", lambda p: p.get("version") == 2)
    definition = parse_definition(
        """
id: failing
name: Every way to fail
mode: one_time
trigger: {all: [{field: category, operator: equals, value: Pet Food/Cat/Dry Cat Food}]}
actions:
  - id: extract
    type: test_extract
    reads: [description]
    settings:
      fail: {PF-000000: INVALID_PROMPT, PF-000004: PROVIDER_LIMITATION, PF-000008: INVALID_OUTPUT}
      recover_on_retry: [PF-000008]
  - id: enrich
    type: test_enrich
  - id: translate
    type: test_translate
    settings: {fail: {PF-000012: SYNC_ISSUE}}
""",
        source="failing.yaml",
        extra_action_types=TYPES,
    )
    apply_definition(settings, definition, "failing.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert run["counts"] == {"COMPLETED": 45, "ERROR": 5}

    tasks = {t["sku"]: t for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]}
    expected = {
        "PF-000000": ("INVALID_PROMPT", "extract"),
        "PF-000004": ("PROVIDER_LIMITATION", "extract"),
        "PF-000008": ("INVALID_OUTPUT", "extract"),
        "PF-000012": ("SYNC_ISSUE", "translate"),
        "PF-000016": ("INCOMPLETE_SOURCE_DATA", "extract"),
    }
    for sku, (category, action) in expected.items():
        task = tasks[sku]
        assert (task["status"], task["failure_category"], task["action_id"]) == (
            "ERROR",
            category,
            action,
        ), task
        assert task["reason"]
    assert "description" in tasks["PF-000016"]["reason"]  # names the missing field
    assert len(tasks["PF-000012"]["outputs"]) == 2  # what the steps before it produced

    retry_failed(settings, definition.id, run_id, "test", category="INVALID_OUTPUT")
    run = worker.wait_for(
        f"/runs/{run_id}/",
        lambda r: r.get("counts") == {"COMPLETED": 46, "ERROR": 4} and r["status"] == "COMPLETED",
    )
    retried = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    again = next(t for t in retried if t["sku"] == "PF-000008")
    assert again["status"] == "COMPLETED" and again["attempt"] == 1
    assert [h["status"] for h in again["history"]][:2] == ["WAITING", "ERROR"]


def test_action_scope_skips_out_of_scope_products_with_a_reason(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    import_catalog(settings, worker, count=40)
    producer = RecordProducer(settings)  # a person already wrote this German title
    edited = update("PF-000004", "u1", "shopping_title", "Von Hand")
    edited["values"][0]["locale"] = "de_DE"
    producer.send("product-changes", "PF-000004", edited)
    producer.flush()
    worker.wait_for("/products/PF-000004/", lambda p: p.get("version") == 2)
    definition = parse_definition(
        """
id: scoped
name: Scoped actions
mode: one_time
trigger: {all: [{field: category, operator: equals, value: Pet Food/Cat}]}
actions:
  - id: extract
    type: test_extract
    scope: {skus: [PF-000000, PF-000001, PF-000004]}
  - id: enrich
    type: test_enrich
    scope: {categories: [Pet Food/Cat/Dry Cat Food]}
  - id: translate
    type: test_translate
    scope: {only_empty: true, categories: [Pet Food/Cat/Dry Cat Food]}
""",
        source="scoped.yaml",
        extra_action_types=TYPES,
    )
    apply_definition(settings, definition, "scoped.yaml", "test")
    run_id = start_run(settings, definition.id, "test")
    run = worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED")
    assert run["tasks_created"] == 20  # dry and wet cat food

    tasks = {t["sku"]: t for t in worker.get(f"/runs/{run_id}/tasks/")["tasks"]}
    full = tasks["PF-000000"]  # dry cat food, listed: every action ran
    assert full["status"] == "COMPLETED"
    assert [o["skipped"] for o in full["outputs"]] == [None, None, None]
    wet = tasks["PF-000001"]  # wet cat food: extract ran, the rest is dry-only
    assert wet["status"] == "COMPLETED"
    assert [o["skipped"] for o in wet["outputs"]] == [
        None,
        "not in categories Pet Food/Cat/Dry Cat Food",
        "not in categories Pet Food/Cat/Dry Cat Food",
    ]
    kept = tasks["PF-000004"]  # only_empty: the person's German title stays
    assert kept["outputs"][2]["fields"] == []
    assert kept["outputs"][2]["skipped"] == "translate kept existing values of shopping_title@de_DE"
    unlisted = tasks["PF-000008"]  # dry, not listed: extraction skipped, so no flavor
    assert unlisted["outputs"][0]["skipped"].startswith("SKU not in the action's 3 listed")
    assert unlisted["status"] == "ERROR"
    assert unlisted["failure_category"] == "INCOMPLETE_SOURCE_DATA"
    reasons = [h["reason"] for h in unlisted["history"] if h["reason"]]
    assert any(r.startswith("extract skipped: SKU not in") for r in reasons)
