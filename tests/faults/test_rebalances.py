"""Scenario 3: rebalances mid-run. A third worker joins while two run, then one of the
first two is killed with SIGKILL; its partitions move to the others (after its
session) and the run ends exactly right (tests/faults/end_state.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.faults.end_state import end_state
from tests.faults.harness import PRODUCTS, installation
from tests.integration.test_scale_out import wait_serving

pytestmark = [pytest.mark.kafka, pytest.mark.faults]


def test_a_worker_joining_and_one_dying_mid_run_lose_and_repeat_nothing(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    with installation(settings, start_worker, tmp_path) as inst:
        inst.start_run()
        inst.wait_done(PRODUCTS // 10)
        inst.start_worker("w3")
        wait_serving(*inst.workers.values())
        joined = inst.run()["counts"]
        inst.wait_done(PRODUCTS // 3)
        killed = inst.run()["counts"]
        inst.kill_worker("w1")
        end_state(
            inst,
            "rebalances",
            extra={"w3 joined at": dict(joined), "w1 killed at": dict(killed)},
        )
