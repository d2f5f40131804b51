"""Scenario 1: SIGKILL a worker at random points of the run, several times, and start
it again; the run ends exactly right (tests/faults/end_state.py).

The kill points and victims come from a seeded ``random.Random``: the seed is printed
and ``CATALOGFLOW_FAULTS_SEED`` replays a failing run.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess

from tests.faults.end_state import end_state
from tests.faults.harness import PRODUCTS, installation

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

KILLS = 3


def test_a_worker_killed_at_random_points_and_restarted_loses_and_repeats_nothing(
    settings: Settings, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    seed = int(os.environ.get("CATALOGFLOW_FAULTS_SEED", random.randrange(1 << 32)))
    print(f"\nworker kills: seed {seed} (CATALOGFLOW_FAULTS_SEED={seed} replays it)")
    rng = random.Random(seed)
    # Progress (products synced) at which to kill, spread over the run.
    points = sorted(rng.randint(PRODUCTS // 20, PRODUCTS * 3 // 5) for _ in range(KILLS))
    kills = []
    with installation(settings, start_worker, tmp_path) as inst:
        inst.start_run()
        for at in points:
            inst.wait_done(at)
            time.sleep(rng.uniform(0.0, 1.5))
            victim = rng.choice(sorted(inst.workers))
            synced = inst.run()
            kills.append(f"{victim}@{(synced or {}).get('counts', {}).get('SYNCED', '?')}")
            inst.kill_worker(victim)
            time.sleep(rng.uniform(0.0, 2.0))
            inst.start_worker(victim)
        end_state(inst, "worker-kills", extra={"seed": seed, "kills": " ".join(kills)})
