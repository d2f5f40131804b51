"""Batch mode end to end: the seed example over the same Dry Cat Food products on the
real broker and the LLM simulator, once with live calls and once through the Batch
API — the same outputs, at the batch price — and once more with a batch the simulator
expires mid-way, which still completes, every answer paid once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_products

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
PRODUCTS = 12  # Dry Cat Food among the first 48 sample products


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.02, batch_delay_s=0.3)) as sim:
        yield sim


def seed(tmp_path: Path, workflow_id: str, model: dict[str, Any] | None) -> Path:
    """The seed example without review and write-back (test_sync.py has those), its
    actions on ``model`` (endpoint fields; None: the worker's default, live)."""
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    document["id"] = workflow_id
    document.pop("sync")
    for action in document["actions"]:
        action.pop("moderation", None)
        # One fixed completion budget: a live call that learns its budget may be cut off
        # and asked again (and billed twice); this way both modes send the same requests.
        action["settings"]["max_completion_tokens"] = 4000
        if model is not None:
            action["settings"]["model"] = model
    path = tmp_path / f"{workflow_id}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


#: Per SKU, each output field's (value, confidence, reasoning), by field and locale.
Values = dict[str, dict[tuple[str, str | None], tuple[Any, Any, Any]]]


def run(settings: Settings, worker: WorkerProcess, path: Path) -> tuple[dict[str, Any], Values]:
    """Run the workflow at ``path`` to its end: the run, and each SKU's output values."""
    definition = load_workflow(path)  # with the Batch API check
    apply_definition(settings, definition, str(path), "test")
    run_id = start_run(settings, definition.id, "test")
    done: dict[str, Any] = worker.wait_for(
        f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=180
    )
    tasks = worker.get(f"/runs/{run_id}/tasks/")["tasks"]
    values: Values = {
        task["sku"]: {
            (f["field"], f["locale"]): (f["value"], f["confidence"], f["reasoning"])
            for output in task["outputs"]
            for f in output["fields"]
        }
        for task in tasks
    }
    return done, values


def test_a_batch_run_gives_the_live_outputs_at_the_batch_price_and_survives_an_expiry(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    simulator: SimulatorThread,
    tmp_path: Path,
) -> None:
    worker = start_worker(
        llm_base_url=f"{simulator.url}/v1",
        llm_kind="compatible",
        action_batch_size=32,
        action_concurrency=16,
    )
    import_products(settings, worker, list(sample_changes(4 * PRODUCTS)))

    live_run, live = run(settings, worker, seed(tmp_path, "seed-live", None))
    assert live_run["counts"] == {"COMPLETED": PRODUCTS}, live_run
    assert len(live) == PRODUCTS and all(len(fields) == 6 for fields in live.values())
    live_calls = simulator.stats()["completions"]
    assert live_calls > 0 and simulator.stats()["batches"] == 0

    # Another model name, so the batch run cannot take the live run's answers from the
    # result cache (whose key names the model); the simulator answers every model alike.
    batch = {"batch": True, "batch_linger_s": 0.3, "batch_poll_s": 0.1}
    batch_run, batched = run(
        settings, worker, seed(tmp_path, "seed-batch", {**batch, "model": "gpt-4o"})
    )
    assert batch_run["counts"] == {"COMPLETED": PRODUCTS}, batch_run
    assert batched == live  # every SKU's values, confidences and reasons
    stats = simulator.stats()
    assert stats["completions"] == live_calls  # not one live call
    # At least one batch per action that calls the model (enrich, translate: the sample
    # texts state their flavour, which the pre-pass settles); how many more depends on
    # how the lines fall into linger windows.
    assert stats["batches"] >= 2, stats
    assert stats["batch_lines"] == live_calls, stats  # one line per live call
    assert batch_run["cost"] == pytest.approx(live_run["cost"] / 2) and batch_run["cost"] > 0
    assert (batch_run["input_tokens"], batch_run["output_tokens"]) == (
        live_run["input_tokens"],
        live_run["output_tokens"],
    )
    print(
        f"live: {live_calls} calls, cost {live_run['cost']:.6f}; batch: {stats['batches']} "
        f"batches, cost {batch_run['cost']:.6f}"
    )

    simulator.configure(batch_expire_after=2)  # the next batch of 3 or more lines expires
    expiry_run, expired = run(
        settings, worker, seed(tmp_path, "seed-expiry", {**batch, "model": "gpt-4o-2024-08-06"})
    )
    assert expiry_run["counts"] == {"COMPLETED": PRODUCTS}, expiry_run  # all terminal, all done
    assert expired == live
    after = simulator.stats()
    assert after["batches_expired"] == 1
    # The lines the expired batch answered were used: each answer was made and paid once.
    assert after["batch_lines"] - stats["batch_lines"] == live_calls
    assert expiry_run["cost"] == pytest.approx(batch_run["cost"])
    print(
        f"expiry: {after['batches'] - stats['batches']} batches (1 expired), "
        f"cost {expiry_run['cost']:.6f}"
    )
