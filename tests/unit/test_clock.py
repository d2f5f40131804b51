"""Time comes from one clock: a manual twin sets it, and the records show its time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

from catalogflow.streams.clock import FakeClock
from catalogflow.streams.engine import budget_pause
from catalogflow.streams.records import ModerationItem, RunState
from catalogflow.streams.review import decision

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_manual_clocks_wall_time_moves_with_its_monotonic_time() -> None:
    clock = FakeClock(start=50.0, wall_start=START)
    clock.advance(90.0)
    assert clock.monotonic() == 140.0
    assert clock.now() == START + timedelta(seconds=90)


def test_a_sleep_on_the_manual_clock_moves_both_scales_without_waiting() -> None:
    clock = FakeClock(wall_start=START)
    asyncio.run(clock.sleep(3600.0))
    assert clock.now() == START + timedelta(hours=1)


def test_a_review_decision_is_stamped_with_the_clocks_time() -> None:
    item = cast(ModerationItem, {"item_id": "i", "task_id": "t", "sku": "s", "fields": []})
    clock = FakeClock(wall_start=START)
    clock.advance(5.0)
    record = decision(item, "APPROVE", actor="anna", clock=clock)
    assert record["decided_at"] == START + timedelta(seconds=5)


def test_a_budget_pause_is_issued_at_the_given_time() -> None:
    run = cast(RunState, {"run_id": "r", "workflow_id": "w", "budget": 1.0, "cost": 1.5})
    assert budget_pause(run, START)["issued_at"] == START
