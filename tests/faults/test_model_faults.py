"""Scenario 4: the model endpoint misbehaves during the run — 20 % 5xx, a burst of
429s with Retry-After, about 5 % malformed JSON and 5 % schema-violating JSON, a few
timeouts, then an outage where every request times out — and then recovers. Tasks the
model client could not carry through end ERROR (PROVIDER_LIMITATION or INVALID_OUTPUT);
``retry-failed`` then completes the run, and it ends exactly right
(tests/faults/end_state.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogflow.streams.control import retry_failed
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import Fault, SimulatorConfig
from catalogflow.testbench.workerproc import WorkerProcess

from tests.faults.end_state import end_state, run_tasks
from tests.faults.harness import PRODUCTS, installation
from tests.integration.test_sync import counts

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

#: Every n-th chat request gets the fault (the first rule that matches wins): 20 % 5xx;
#: of the rest about 5 % malformed (every 19th), 5 % breaking the schema (every 21st)
#: and 3 % timing out (every 37th).
MIXED: list[tuple[int, Fault]] = [
    (5, ("status", 500)),
    (19, ("malformed", None)),
    (21, ("schema_violation", None)),
    (37, ("timeout", None)),
]
#: The first requests of the run: a burst of 429s (Retry-After from the simulator).
BURST: list[Fault] = [("rate_limit", None)] * 6
#: Seconds of the outage: every request times out, so the calls in flight give up.
OUTAGE_S = 6.0
LLM_TIMEOUT_S = 1.0


def test_model_faults_end_tasks_in_error_and_retry_failed_completes_the_run(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    config = SimulatorConfig(latency_s=0.1, faults=list(BURST), fault_every=MIXED)
    config.timeout_sleep_s = 3.0
    with installation(
        settings, start_worker, tmp_path, llm_config=config, llm_timeout=LLM_TIMEOUT_S
    ) as inst:
        inst.start_run()
        inst.wait_done(PRODUCTS // 4, ("SYNCED", "ERROR"))
        inst.llm.configure(faults=[], fault_every=[(1, ("timeout", None))])
        time.sleep(OUTAGE_S)
        inst.llm.configure(fault_every=[])  # healthy again
        first = inst.wait_completed()
        failed: dict[str, Any] = dict(
            Counter(t["failure_category"] for t in run_tasks(inst) if t["status"] == "ERROR")
        )
        stats = inst.llm.stats()
        assert counts(first).get("ERROR", 0) > 0, f"no task failed: {first}; {stats}"
        retry_failed(inst.settings, inst.definition.id, inst.run_id, "test")
        inst.wait_run(lambda r: counts(r) == {"SYNCED": PRODUCTS}, "every task SYNCED")
        end_state(
            inst,
            "model-faults",
            extra={
                "before retry-failed": counts(first),
                "failed": failed,
                "model requests": stats["requests"],
                "faults served": stats["faults_served"],
            },
        )
