"""The seed example on the shared broker, one worker on both simulators, its
``/metrics`` page read directly: while the German texts wait for review the run's
gauges carry its run id and the backlog gauge counts them; once the run is done the
run id series are gone and the recorded tasks by status, model requests, tokens and
decisions are the run's own totals (and the simulator's counts)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.review import decision, pending_items, send_decisions
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_products, sample_shop
from tests.integration.metrics_page import Samples, parse, total

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dry-cat-food.yaml"
TOKEN_ENV = "CATALOGFLOW_TEST_MAGENTO_TOKEN"
CATALOG = 40  # a quarter is Dry Cat Food
MATCHING = CATALOG // 4
WORKFLOW = "dry-cat-food"


@pytest.fixture
def llm() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.01)) as sim:
        yield sim


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    shop = sample_shop(CATALOG)
    yield shop
    shop.stop()


def scrape(worker: WorkerProcess) -> Samples:
    page = httpx.get(f"{worker.url}/metrics", timeout=10)
    page.raise_for_status()
    return parse(page.text)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [labels for sample, labels, _ in samples if sample == name]


def scrape_until(
    worker: WorkerProcess, ready: Callable[[Samples], bool], timeout: float = 30.0
) -> Samples:
    """Scrape until ``ready`` (the gauges are set by timers every few seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(worker)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.5)


def test_a_finished_runs_metrics_are_its_own_totals(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())
    worker = start_worker(
        llm_base_url=f"{llm.url}/v1",
        llm_kind="compatible",
        magento_url=shop.url,
        magento_token_env=TOKEN_ENV,
    )
    import_products(settings, worker, list(sample_changes(CATALOG)))
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    definition = parse_definition(yaml.safe_dump(document), str(EXAMPLE))
    apply_definition(settings, definition, str(EXAMPLE), "test")
    run_id = start_run(settings, definition.id, "test", budget=1000.0)
    url = f"/runs/{run_id}/"
    this_run = {"workflow": WORKFLOW, "run_id": run_id}

    worker.wait_for(url, lambda r: r.get("counts") == {"AWAITING_MODERATION": MATCHING}, 600)
    waiting = scrape_until(
        worker,
        lambda s: total(s, "catalogflow_moderation_pending", workflow=WORKFLOW) == MATCHING,
    )
    assert total(waiting, "catalogflow_moderation_pending", workflow=WORKFLOW) == MATCHING
    assert total(waiting, "catalogflow_moderation_oldest_age_seconds", workflow=WORKFLOW) >= 0
    assert total(waiting, "catalogflow_runs_active", workflow=WORKFLOW) == 1
    assert total(waiting, "catalogflow_run_tasks_done", **this_run) == 0
    assert total(waiting, "catalogflow_run_last_progress_timestamp_seconds", **this_run) > 0
    assert 0 < total(waiting, "catalogflow_run_budget_used_ratio", **this_run) < 1

    items = pending_items(settings, run_id=run_id, action_id="translate")
    assert len(items) == MATCHING
    send_decisions(settings, [decision(i, "APPROVE", actor="anna") for i in items])
    run = worker.wait_for(url, lambda r: r.get("status") == "COMPLETED", timeout=600)
    assert run["counts"] == {"SYNCED": MATCHING}, run

    done = scrape_until(
        worker,
        lambda s: (
            total(s, "catalogflow_moderation_pending", workflow=WORKFLOW) == 0
            and total(s, "catalogflow_runs_active", workflow=WORKFLOW) == 0
        ),
    )
    transitions = "catalogflow_task_transitions_total"
    for status in ("SYNCED", "AWAITING_MODERATION"):
        assert total(done, transitions, workflow=WORKFLOW, status=status) == MATCHING, status
    for status in ("ERROR", "REJECTED", "SKIPPED"):
        assert total(done, transitions, workflow=WORKFLOW, status=status) == 0, status
    stats = llm.stats()
    assert total(done, "catalogflow_model_requests_total", outcome="ok") == stats["completions"]
    assert total(done, "catalogflow_model_requests_total") == stats["completions"]
    prompt = total(done, "catalogflow_model_tokens_total", kind="prompt")
    completion = total(done, "catalogflow_model_tokens_total", kind="completion")
    assert (prompt, completion) == (run["input_tokens"], run["output_tokens"])
    assert (prompt, completion) == (stats["prompt_tokens"], stats["completion_tokens"])
    assert total(done, "catalogflow_model_cost_dollars_total") == pytest.approx(run["cost"])
    decided = total(done, "catalogflow_moderation_decisions_total", kind="APPROVE", role="EDITOR")
    assert decided == MATCHING
    assert total(done, "catalogflow_sync_results_total", outcome="synced") > 0
    assert total(done, "catalogflow_llm_cache_requests_total", result="miss") > 0
    assert total(done, "catalogflow_magento_request_seconds_count") > 0
    assert total(done, "catalogflow_action_seconds_count", workflow=WORKFLOW) > 0
    # The run has ended: no series carries its id any more.
    assert not [s for s in done if s[1].get("run_id") == run_id]
