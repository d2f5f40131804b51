"""Scale-out on the real broker: workers share the partitions of one run, and the run
ends exactly right while the group changes under it.

Two workers start a one-time run of the seed example (no review, straight to the
Magento simulator). Mid-run a third joins, then the first is stopped with SIGTERM and
the second killed with SIGKILL; the third takes their partitions over, rebuilding
their tables from the changelog topics, and finishes the run. Every matching product
must end with exactly one terminal task, Magento must see one write per product,
scope and field, the run's totals must be exact, and each worker's own metrics must
show that it processed tasks.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.engine import TERMINAL
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread
from catalogflow.testbench.magento.simulator import MagentoSimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_products, sample_shop
from tests.integration.metrics_page import parse, total
from tests.integration.test_crash import wait_until_replayed
from tests.integration.test_sync import EXAMPLE, TOKEN_ENV, counts, seed_workflow

pytestmark = pytest.mark.kafka

CATALOG = 800  # a quarter is Dry Cat Food: 200 matching products
MATCHING = CATALOG // 4
#: Slow enough that the run outlasts the group changes, small enough to stay quick.
MODEL_LATENCY_S = 0.4
#: A static member that stops does not leave the group: its partitions move once the
#: broker gives up on its session. The default (60 s) would make the test wait twice.
SESSION_TIMEOUT_S = 10.0
TRANSITIONS = "catalogflow_task_transitions_total"


@pytest.fixture
def llm() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=MODEL_LATENCY_S)) as sim:
        yield sim


@pytest.fixture
def shop() -> Iterator[MagentoSimulatorThread]:
    shop = sample_shop(CATALOG)
    yield shop
    shop.stop()


def test_a_run_finishes_exactly_while_workers_join_stop_and_die(
    settings: Settings,
    start_worker: Callable[..., WorkerProcess],
    llm: SimulatorThread,
    shop: MagentoSimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, shop.simulator.issue_integration_token())

    def worker(name: str) -> WorkerProcess:
        return start_worker(
            worker_id=name,
            web_port=free_port(),
            data_dir=tmp_path / name,
            session_timeout=SESSION_TIMEOUT_S,
            llm_base_url=f"{llm.url}/v1",
            llm_kind="compatible",
            magento_url=shop.url,
            magento_token_env=TOKEN_ENV,
            action_batch_size=8,
            action_concurrency=2,
        )

    first = worker("w1")
    import_products(settings, first, list(sample_changes(CATALOG)))
    second = worker("w2")  # recovers the products of the partitions it takes over
    wait_serving(first, second)
    definition = seed_workflow(review=())
    apply_definition(settings, definition, str(EXAMPLE), "test")
    run_id = start_run(settings, definition.id, "test")
    workers = [first, second]

    wait_synced(workers, run_id, MATCHING // 10)
    third = worker("w3")
    workers.append(third)
    wait_serving(*workers)
    wait_synced(workers, run_id, MATCHING // 3)

    processed = {"w1": transitions(first)}
    first.stop()  # SIGTERM; raises unless it stopped cleanly within shutdown_timeout
    workers.remove(first)
    wait_synced(workers, run_id, MATCHING // 2)

    processed["w2"] = transitions(second)
    second.kill()  # SIGKILL: no commit, no goodbye
    workers.remove(second)

    run = third.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=300)
    wait_until_replayed(settings, timeout=120)  # a replay could still change the numbers
    run = third.get(f"/runs/{run_id}/")
    tasks = third.get(f"/runs/{run_id}/tasks/")["tasks"]
    processed["w3"] = transitions(third)
    health = third.get("/health/")

    skus = [t["sku"] for t in tasks]
    assert len(skus) == len(set(skus)) == MATCHING, f"{len(skus)} tasks, {len(set(skus))} skus"
    assert Counter(t["status"] for t in tasks) == {"SYNCED": MATCHING}
    for task in tasks:
        finals = [h["status"] for h in task["history"] if h["status"] in TERMINAL]
        assert finals == ["SYNCED"], f"not exactly one terminal transition: {task}"

    written = Counter((w.sku, w.store, a) for w in shop.simulator.writes for a in w.attributes)
    assert written and max(written.values()) == 1, written.most_common(3)
    assert {sku for sku, _, _ in written} == set(skus)

    assert run["tasks_created"] == MATCHING, run
    assert counts(run) == {"SYNCED": MATCHING}, run
    assert run["status"] == "COMPLETED", run

    assert all(n > 0 for n in processed.values()), f"task transitions per worker: {processed}"
    assert health["state"] == "serving" and health["assigned"], health
    print(f"\nscale-out: task transitions per worker {processed}; last worker {health}")


def run_view(workers: list[WorkerProcess], run_id: str) -> Any:
    """The run's totals from whichever worker holds its partition now (None: none yet)."""
    for worker in workers:
        try:
            answer = worker.get(f"/runs/{run_id}/")
        except CatalogflowError:
            continue
        if "error" not in answer:
            return answer
    return None


def wait_synced(workers: list[WorkerProcess], run_id: str, at_least: int) -> None:
    deadline = time.monotonic() + 300
    run = None
    while time.monotonic() < deadline:
        run = run_view(workers, run_id)
        if run is not None and counts(run).get("SYNCED", 0) >= at_least:
            return
        time.sleep(0.5)
    logs = "\n".join(w.log_tail(15) for w in workers)
    raise AssertionError(f"run never reached {at_least} synced: {run}\n{logs}")


def wait_serving(*workers: WorkerProcess) -> None:
    """Until every worker holds partitions and its tables are current."""
    for worker in workers:
        worker.wait_for("/health/", lambda h: h["state"] == "serving", timeout=120)


def transitions(worker: WorkerProcess) -> float:
    """Task transitions this worker recorded, summed over workflows, actions, statuses."""
    return total(parse(worker.get_text("/metrics")), TRANSITIONS)
