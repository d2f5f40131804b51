"""``catalogflow workflow retry-failed`` on the real broker: a product whose global
Magento write kept failing with 429 while its German write went through is retried
once the shop is healthy, writing exactly what is missing, and the run counts it once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_products, sample_shop
from tests.integration.readside_fixtures import Cli, cli, read_model, read_settings
from tests.integration.test_sync import EXAMPLE, counts, seed_workflow, sync_worker

__all__ = ["cli", "read_model", "read_settings"]  # the fixtures (the read side's projector)

pytestmark = pytest.mark.kafka

FAILING = "PF-000000"  # one of the two Dry Cat Food products of the first eight


@pytest.fixture
def llm() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as sim:
        yield sim


def test_retry_failed_writes_only_the_missing_global_values_of_a_partly_synced_product(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    shop = sample_shop(8)
    try:
        sim = shop.simulator
        worker = sync_worker(start_worker, llm, shop, monkeypatch)
        import_products(settings, worker, list(sample_changes(8)))
        # Every global save of one product is refused; its reads and German saves are not.
        sim.inject(
            "429", count=1000, path_contains=f"/rest/all/V1/products/{FAILING}", method="PUT"
        )
        definition = seed_workflow(review=())
        apply_definition(settings, definition, str(EXAMPLE), "test")
        run_id = start_run(settings, definition.id, "test")
        url = f"/runs/{run_id}/"
        run = worker.wait_for(url, lambda r: r.get("status") == "COMPLETED", timeout=120)
        assert counts(run) == {"SYNCED": 1, "ERROR": 1}, run

        task = _task(worker, run_id, FAILING)
        assert (task["status"], task["failure_category"]) == ("ERROR", "SYNC_ISSUE")
        assert "magento/all ERROR" in task["reason"] and "magento/de SYNCED" in task["reason"]
        german = [w for w in sim.writes if w.sku == FAILING and w.store == "de"]
        assert german and "shopping_title" in german[0].attributes
        assert not [w for w in sim.writes if w.sku == FAILING and w.store == "all"]

        # The commands read the read model: let the projector catch up with the run.
        assert cli("workflow", "status", run_id, "--follow")[0] == 1  # one ERROR

        # An action that did not fail has nothing to retry: nothing is sent.
        code, _, err = cli("workflow", "retry-failed", run_id, "--action", "extract")
        assert code == 1 and "nothing to retry" in err, err

        sim.clear_faults()
        writes = len(sim.writes)
        code, out, err = cli(
            "workflow",
            "retry-failed",
            run_id,
            "--category",
            "sync_issue",
            "--action",
            "sync",
            "--wait",
        )
        assert code == 0, out + err
        assert out.splitlines()[0] == f"sent RETRY_FAILED to run {run_id}: 1 task"
        assert out.splitlines()[-1] == f"run {run_id} COMPLETED: no task ended in ERROR"

        task = _task(worker, run_id, FAILING)
        assert (task["status"], task["attempt"]) == ("SYNCED", 1), task
        assert "magento/all SYNCED" in task["reason"] and "magento/de SYNCED" in task["reason"]
        # Exactly the missing writes: the global values once, the German ones not again.
        again = sim.writes[writes:]
        assert [(w.sku, w.store) for w in again] == [(FAILING, "all")]
        values = {
            (f["field"], f["locale"]): f["value"] for o in task["outputs"] for f in o["fields"]
        }
        assert sim.override(FAILING, "all", "shopping_title") == values[("shopping_title", None)]
        assert sim.value(FAILING, "all", "flavor") == sim.option_id(
            "flavor", values[("Flavor", None)]
        )
        assert [w for w in sim.writes if w.sku == FAILING and w.store == "de"] == german

        # The run moved the task back and forward once: exact totals, completed again.
        run = worker.get(url)
        assert run["status"] == "COMPLETED" and run["finished_at"], run
        assert counts(run) == {"SYNCED": 2}
        assert run["action_counts"] == {"translate:SYNCED": 2}
        assert run["tasks_created"] == 2
    finally:
        shop.stop()


def _task(worker: WorkerProcess, run_id: str, sku: str) -> dict[str, Any]:
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    found: dict[str, Any] = next(t for t in tasks if t["sku"] == sku)
    return found
