"""Scenario 5 (part): the Magento side misbehaves during the sync — 5xx answers, 429s
with Retry-After, deadlock 400s on saves, latency spikes — while a person edits fields
in the shop mid-run. Writes that still fail end their task in ERROR (SYNC_ISSUE) and
``retry-failed`` writes what is missing; a person's edit is a conflict, reported in the
task's history and never overwritten; the run ends exactly right
(tests/faults/end_state.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from catalogflow.streams.control import retry_failed
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.faults.end_state import end_state, run_tasks
from tests.faults.harness import PRODUCTS, installation
from tests.integration.test_sync import counts

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

EDITED = max(2, PRODUCTS // 20)  # products whose global title a person edits mid-run


def test_magento_faults_and_a_persons_edits_mid_sync_write_each_value_once(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    with installation(settings, start_worker, tmp_path) as inst:
        sim = inst.shop.simulator
        # The last matching products of the catalog (every fourth is Dry Cat Food).
        edited = [f"PF-{n:06d}" for n in range(4 * (PRODUCTS - EDITED), 4 * PRODUCTS, 4)]
        inst.start_run()
        for sku in edited:
            sim.set_value(sku, "all", "shopping_title", f"A person's title for {sku}")
        inst.wait_done(PRODUCTS // 10)
        sim.inject("500", 8, method="PUT")
        sim.inject("429", 8, seconds=1.0)
        sim.inject("deadlock", 8)
        sim.inject("latency", 10, seconds=2.0)
        inst.wait_done(PRODUCTS // 2, ("SYNCED", "ERROR"))
        sim.inject("500", 6)
        sim.inject("lock_wait", 6)
        first = inst.wait_completed()
        sim.clear_faults()
        if counts(first).get("ERROR"):
            retry_failed(inst.settings, inst.definition.id, inst.run_id, "test")
            inst.wait_run(lambda r: counts(r) == {"SYNCED": PRODUCTS}, "every task SYNCED")
        conflicts = {
            t["sku"]
            for t in run_tasks(inst)
            if "shopping_title conflict" in (t["history"][-1]["reason"] or "")
        }
        state = end_state(
            inst,
            "magento-faults",
            kept=[(sku, "all", "shopping_title") for sku in edited],
            extra={"before retry-failed": counts(first), "conflicts": len(conflicts)},
        )
        assert conflicts == set(edited), f"conflicts {sorted(conflicts)}: {state.summary()}"
        for sku in edited:
            assert sim.value(sku, "all", "shopping_title") == f"A person's title for {sku}"
