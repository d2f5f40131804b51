"""The worker's state as ``/health/`` and the gauge name it, from faust's facts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from catalogflow.streams.metrics.current import configure_metrics
from catalogflow.streams.metrics.recording import RecordingMetrics
from catalogflow.streams.metrics.workers import WORKER_STATE
from catalogflow.streams.workerstate import STATES, WorkerState, classify, set_state_gauge


@pytest.mark.parametrize(
    ("partitions", "rebalancing", "recovered", "state"),
    [
        (0, False, True, "unassigned"),  # more workers than partitions, or just joined
        (0, True, False, "unassigned"),
        (4, True, True, "recovering"),  # a rebalance moves partitions: nothing consumed
        (4, False, False, "recovering"),  # rebuilding tables from the changelogs
        (4, False, True, "serving"),
    ],
)
def test_state_from_assignment_rebalance_and_recovery(
    partitions: int, rebalancing: bool, recovered: bool, state: str
) -> None:
    assert classify(partitions, rebalancing, recovered) == state


def test_health_body_says_assigned_and_what_is_left_to_recover() -> None:
    body = WorkerState("recovering", 3, False, 120).as_json()
    assert body == {
        "state": "recovering",
        "assigned": True,
        "partitions": 3,
        "rebalancing": False,
        "recovery_remaining": 120,
    }


@pytest.fixture
def recorded() -> Iterator[RecordingMetrics]:
    backend = RecordingMetrics()
    configure_metrics(backend)
    yield backend
    configure_metrics(None)


def test_the_gauge_is_one_for_the_current_state_only(recorded: RecordingMetrics) -> None:
    set_state_gauge("recovering")
    set_state_gauge("serving")
    assert {s: recorded.value(WORKER_STATE, state=s) for s in STATES} == {
        "unassigned": 0.0,
        "recovering": 0.0,
        "serving": 1.0,
    }
