"""Model faults end to end: a real worker on the real broker calls the LLM simulator
through the real openai client while the simulator serves 429 storms, 5xx answers,
timeouts, malformed JSON and schema-violating output.

Every run must end — status COMPLETED within a bounded time, with the task counts
adding up to ``tasks_created`` (the pipeline never stalls) — and every task must end in
the right state: retried and COMPLETED when the fault passes, ERROR with the right
``failure_category`` when it does not.

The simulator's fault queue is global (one fault per chat request, in arrival order),
so the fault plans are built to make the outcome deterministic:

* transient plans serve fewer faults than any single task could exhaust, so every
  task completes whichever requests the faults land on;
* persistent plans run the action agent one task at a time (``action_concurrency=1``,
  so the worker sends one request at a time) and serve exactly the number of faults
  one task can absorb before giving up. The first task processed eats all of them and
  ends ERROR; every later request is clean, so the other tasks complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from catalogflow.connectors.llm.provider import ModelEndpoint
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import WorkflowDefinition, parse_definition
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import Fault, SimulatorConfig, SimulatorThread
from catalogflow.testbench.workerproc import WorkerProcess

from tests.integration.catalog import import_catalog

pytestmark = pytest.mark.kafka

#: 40 sample products, of which every fourth (PF-000000, PF-000004, …) is dry cat food.
CATALOG = 40
DRY_CAT_FOOD = 10
#: How long a run may take before we call it stalled.
RUN_TIMEOUT_S = 90.0

#: Requests one call of the model client makes before it gives up.
MAX_ATTEMPTS = ModelEndpoint.max_attempts
#: Requests one task makes for a retryable failure (PROVIDER_LIMITATION): the step
#: runner calls the action once, and the client's own retries are the only ones.
PROVIDER_BUDGET = MAX_ATTEMPTS

ENRICH = """
id: {id}
name: Fault test — shopping title
mode: one_time
trigger: {{all: [{trigger}]}}
actions:
  - id: enrich
    type: content_enrichment
    reads: [name, description]
    settings:
      fields: [shopping_title]
      {extra}
"""
DRY_CAT_FOOD_TRIGGER = "{field: category, operator: equals, value: Pet Food/Cat/Dry Cat Food}"


def enrich_workflow(
    workflow_id: str, trigger: str = DRY_CAT_FOOD_TRIGGER, extra: str = ""
) -> WorkflowDefinition:
    """The one-step fault-test workflow; ``extra`` is one more line of its settings."""
    return parse_definition(
        ENRICH.format(id=workflow_id, trigger=trigger, extra=extra), source=f"{workflow_id}.yaml"
    )


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(SimulatorConfig(latency_s=0.02)) as sim:
        yield sim


@pytest.fixture
def start_ai_worker(
    start_worker: Callable[..., WorkerProcess], simulator: SimulatorThread
) -> Callable[..., WorkerProcess]:
    """A worker calling the simulator, with the given settings on top."""

    def start(**changes: Any) -> WorkerProcess:
        return start_worker(
            **{
                "llm_base_url": f"{simulator.url}/v1",
                "llm_kind": "compatible",
                "action_batch_size": 32,
                "action_concurrency": 16,
                **changes,
            }
        )

    return start


def run_to_the_end(
    settings: Settings,
    worker: WorkerProcess,
    definition: WorkflowDefinition,
    expected_tasks: int = DRY_CAT_FOOD,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], float]:
    """Start a run, wait (bounded) until it is COMPLETED, check that nothing is left
    behind, and return the run, its tasks by SKU, and how long it took."""
    apply_definition(settings, definition, f"{definition.id}.yaml", "test")
    started = time.monotonic()
    run_id = start_run(settings, definition.id, "test")
    run = worker.wait_for(
        f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=RUN_TIMEOUT_S
    )
    elapsed = time.monotonic() - started
    assert run["tasks_created"] == expected_tasks, run
    assert sum(run["counts"].values()) == run["tasks_created"], run
    answer = worker.wait_for(
        f"/runs/{run_id}/tasks/",
        lambda a: (
            len(a["tasks"]) == expected_tasks
            and all(t["status"] in ("COMPLETED", "ERROR") for t in a["tasks"])
        ),
        timeout=30,
    )
    tasks = {t["sku"]: t for t in answer["tasks"]}
    assert len(tasks) == expected_tasks
    return run, tasks, elapsed


def assert_completed_with_output(task: dict[str, Any]) -> None:
    assert task["status"] == "COMPLETED", task
    assert task["failure_category"] is None, task
    fields = [f for output in task["outputs"] for f in output["fields"]]
    assert [f["field"] for f in fields] == ["shopping_title"], task
    assert fields[0]["value"], task


# -- 429 storms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sim_config", "extra_setting"),
    [
        # Consecutive scripted 429s (Retry-After 1 s): after a 429 the limiter lets
        # requests out one at a time, so one task may meet them all in a row; they are
        # one fewer than a task can absorb (its model call's MAX_ATTEMPTS, the only
        # retries), so every task must complete whichever task meets them.
        pytest.param(
            {"faults": [("rate_limit", None)] * (MAX_ATTEMPTS - 1)}, "", id="scripted-429-storm"
        ),
        # A real limit: 120 requests per minute, at most 2 in any 1 s window; the client
        # must learn it from the headers and pace. Whether its first requests go out
        # together (and are refused) depends on how the tasks reach the action, so the
        # first answer is a scripted 429 that every run meets. (A fixed completion
        # budget: while a learned one is still the schema bound, only two calls go out
        # at once.)
        pytest.param(
            {"rpm": 120, "burst_window_s": 1.0, "faults": [("rate_limit", None)]},
            "max_completion_tokens: 300",
            id="tiny-rpm",
        ),
    ],
)
def test_a_429_storm_is_waited_out_and_every_task_completes(
    settings: Settings,
    start_ai_worker: Callable[..., WorkerProcess],
    simulator: SimulatorThread,
    sim_config: dict[str, Any],
    extra_setting: str,
) -> None:
    worker = start_ai_worker()
    import_catalog(settings, worker, CATALOG)
    simulator.configure(**sim_config)
    simulator.reset()

    run, tasks, _ = run_to_the_end(settings, worker, enrich_workflow("storm", extra=extra_setting))

    assert run["counts"] == {"COMPLETED": DRY_CAT_FOOD}, run
    for task in tasks.values():
        assert_completed_with_output(task)
    stats = simulator.stats()
    assert stats["rate_limited"] > 0, stats
    assert stats["completions"] == DRY_CAT_FOOD, stats
    assert stats["faults_pending"] == 0, stats
    if "rpm" not in sim_config:
        assert stats["rate_limited"] == len(sim_config["faults"]), stats


# -- faults that pass: retried or re-sampled, then COMPLETED --------------------------------


@pytest.mark.parametrize(
    ("faults", "worker_changes"),
    [
        pytest.param([("status", 500), ("status", 502), ("status", 503)], {}, id="a-few-5xx"),
        pytest.param(
            [("timeout", None), ("timeout", None)], {"llm_timeout": 1.0}, id="two-timeouts"
        ),
        pytest.param([("malformed", None)], {}, id="malformed-json-once"),
        pytest.param([("schema_violation", None)], {}, id="schema-violation-once"),
    ],
)
def test_a_passing_fault_is_retried_and_every_task_completes(
    settings: Settings,
    start_ai_worker: Callable[..., WorkerProcess],
    simulator: SimulatorThread,
    faults: list[Fault],
    worker_changes: dict[str, Any],
) -> None:
    # Fewer faults than one model call tolerates: no task can fail, wherever they land.
    assert len(faults) < MAX_ATTEMPTS
    worker = start_ai_worker(**worker_changes)
    import_catalog(settings, worker, CATALOG)
    simulator.configure(faults=faults, timeout_sleep_s=5.0)
    simulator.reset()

    run, tasks, _ = run_to_the_end(settings, worker, enrich_workflow("passing"))

    assert run["counts"] == {"COMPLETED": DRY_CAT_FOOD}, run
    for task in tasks.values():
        assert_completed_with_output(task)
    stats = simulator.stats()
    assert stats["faults_served"] == len(faults), stats
    assert stats["faults_pending"] == 0, stats
    kind = faults[0][0]
    if kind == "timeout":
        # A timed-out request is abandoned by the client; a fresh one replaces it.
        assert stats["requests"] >= DRY_CAT_FOOD + len(faults), stats
    else:
        # Exactly one extra request per fault: retried (5xx) or re-sampled (bad output)
        # inside the same model call, and nothing else sent twice.
        assert stats["requests"] == DRY_CAT_FOOD + len(faults), stats
    if kind == "status":
        assert stats["errors"] == len(faults), stats
        assert stats["completions"] == DRY_CAT_FOOD, stats
    if kind in ("malformed", "schema_violation"):
        # The bad samples were answered (200) and billed, then rejected by validation.
        assert stats["completions"] == DRY_CAT_FOOD + len(faults), stats


# -- faults that persist: one task ERROR with the right category, the rest COMPLETED -------


@pytest.mark.parametrize(
    ("fault", "worker_changes", "budget", "category", "reason"),
    [
        pytest.param(
            ("status", 500),
            {},
            PROVIDER_BUDGET,
            "PROVIDER_LIMITATION",
            f"server error (500) after {MAX_ATTEMPTS} attempts",
            id="5xx-on-every-request",
        ),
        pytest.param(
            ("timeout", None),
            {"llm_timeout": 1.0},
            PROVIDER_BUDGET,
            "PROVIDER_LIMITATION",
            f"timed out after {MAX_ATTEMPTS} attempts",
            id="timeout-on-every-request",
        ),
        pytest.param(
            ("malformed", None),
            {},
            MAX_ATTEMPTS,  # not retryable: the action agent does not try again
            "INVALID_OUTPUT",
            "not JSON",
            id="malformed-json-every-sample",
        ),
        pytest.param(
            ("schema_violation", None),
            {},
            MAX_ATTEMPTS,
            "INVALID_OUTPUT",
            "breaks the schema",
            id="schema-violation-every-sample",
        ),
    ],
)
def test_a_persistent_fault_fails_its_task_with_the_right_category_and_the_rest_complete(
    settings: Settings,
    start_ai_worker: Callable[..., WorkerProcess],
    simulator: SimulatorThread,
    fault: Fault,
    worker_changes: dict[str, Any],
    budget: int,
    category: str,
    reason: str,
) -> None:
    # One task at a time: the first task processed gets every one of the `budget` faults.
    worker = start_ai_worker(action_concurrency=1, **worker_changes)
    import_catalog(settings, worker, CATALOG)
    simulator.configure(faults=[fault] * budget, timeout_sleep_s=5.0)
    simulator.reset()

    run, tasks, _ = run_to_the_end(settings, worker, enrich_workflow("persistent"))

    assert run["counts"] == {"COMPLETED": DRY_CAT_FOOD - 1, "ERROR": 1}, run
    failed = [t for t in tasks.values() if t["status"] == "ERROR"]
    assert len(failed) == 1, tasks
    assert failed[0]["failure_category"] == category, failed[0]
    assert reason in (failed[0]["reason"] or ""), failed[0]
    for task in tasks.values():
        if task is not failed[0]:
            assert_completed_with_output(task)
    stats = simulator.stats()
    # The failing task used its whole budget — no more, no less — and then the
    # pipeline moved on: every other task needed exactly one clean request.
    assert stats["faults_served"] == budget, stats
    assert stats["faults_pending"] == 0, stats
    assert stats["requests"] == budget + DRY_CAT_FOOD - 1, stats


def test_always_500_fails_a_task_after_exactly_max_attempts_calls_and_the_worker_carries_on(
    settings: Settings,
    start_ai_worker: Callable[..., WorkerProcess],
    simulator: SimulatorThread,
) -> None:
    """``fault_every`` with period 1 on a one-SKU run: the task makes exactly the model
    client's ``max_attempts`` calls — its retry policy is the one place that decides
    how often a task's model call is tried, the step runner adds none — and ends ERROR
    with PROVIDER_LIMITATION naming the status; once the provider recovers, the same
    worker completes a full run, that product included."""
    worker = start_ai_worker()
    import_catalog(settings, worker, CATALOG)
    simulator.configure(fault_every=[(1, ("status", 500))])
    simulator.reset()

    one = enrich_workflow("one-sku", "{field: sku, operator: equals, value: PF-000000}")
    run, tasks, _ = run_to_the_end(settings, worker, one, expected_tasks=1)
    assert run["counts"] == {"ERROR": 1}, run
    task = tasks["PF-000000"]
    assert task["failure_category"] == "PROVIDER_LIMITATION", task
    assert f"server error (500) after {MAX_ATTEMPTS} attempts" in task["reason"], task
    assert simulator.stats()["requests"] == MAX_ATTEMPTS, simulator.stats()

    simulator.configure(fault_every=[])
    run, tasks, _ = run_to_the_end(settings, worker, enrich_workflow("after-recovery"))
    assert run["counts"] == {"COMPLETED": DRY_CAT_FOOD}, run
    for task in tasks.values():
        assert_completed_with_output(task)
