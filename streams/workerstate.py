"""What a worker is doing right now, for ``/health/``, readiness probes and the
``catalogflow_worker_state`` gauge.

faust keeps the facts in three places (the consumer's assignment, ``app.rebalancing``
and the table recovery's ``in_recovery``/``completed``); this module reads them in one
place and names the result, so a probe, a dashboard and an operator mean the same thing:

* ``unassigned``: the worker holds no partition (it has just joined, a rebalance is
  handing partitions out, or there are more workers than partitions);
* ``recovering``: it holds partitions and is rebuilding their tables from the
  changelog topics (or a rebalance is in progress), so it processes nothing yet;
* ``serving``: its tables are current and its agents consume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import faust
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.workers import WORKER_STATE
from faust.tables.manager import TableManager

State = Literal["unassigned", "recovering", "serving"]
STATES: tuple[State, ...] = ("unassigned", "recovering", "serving")

#: Seconds between updates of the state gauge: a scrape sees a change within this.
GAUGE_INTERVAL = 2.0


@dataclass(frozen=True)
class WorkerState:
    state: State
    partitions: int  # partitions of input topics this worker consumes (changelogs apart)
    rebalancing: bool
    recovery_remaining: int  # changelog messages still to read before it serves

    def as_json(self) -> dict[str, object]:
        return {
            "state": self.state,
            "assigned": self.partitions > 0,
            "partitions": self.partitions,
            "rebalancing": self.rebalancing,
            "recovery_remaining": self.recovery_remaining,
        }


def classify(partitions: int, rebalancing: bool, recovered: bool) -> State:
    """The state from the three facts; kept pure so every combination is tested."""
    if partitions == 0:
        return "unassigned"
    if rebalancing or not recovered:
        return "recovering"
    return "serving"


def worker_state(app: faust.App) -> WorkerState:
    """This worker's state, read from the running faust app."""
    changelogs = app.tables.changelog_topics
    partitions = sum(1 for tp in app.assignor.assigned_actives() if tp.topic not in changelogs)
    recovery = cast(TableManager, app.tables).recovery  # TableManagerT does not declare it
    recovered = recovery.completed.is_set() and not recovery.in_recovery
    return WorkerState(
        state=classify(partitions, bool(app.rebalancing), recovered),
        partitions=partitions,
        rebalancing=bool(app.rebalancing),
        recovery_remaining=0 if recovered else int(recovery.active_remaining_total()),
    )


def record_state(app: faust.App) -> WorkerState:
    """Read the state and set the gauge."""
    current = worker_state(app)
    set_state_gauge(current.state)
    return current


def set_state_gauge(current: State) -> None:
    """1 for the current state, 0 for the others (one series per state, always present,
    so an alert can test ``== 1`` without absent())."""
    for state in STATES:
        metrics().set(WORKER_STATE, 1.0 if state == current else 0.0, state=state)


def register(app: faust.App) -> None:
    """Keep the gauge current while the worker runs."""

    async def update_worker_state() -> None:
        record_state(app)

    app.timer(interval=GAUGE_INTERVAL)(update_worker_state)


def held_partitions(app: faust.App, table: Any) -> set[int]:
    """The partitions of ``table`` this worker holds as their active owner now.

    A worker keeps the rows of partitions a rebalance took away (in memory, or in its
    RocksDB files) and never updates them again: the views answer only from partitions
    it owns, so two workers never give two different answers for one run."""
    topic = table.changelog_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


def holds(app: faust.App, table: Any, key: str) -> bool:
    return int(table.partition_of(key)) in held_partitions(app, table)


def held_rows(app: faust.App, table: Any) -> Iterator[tuple[str, Any]]:
    """The (key, value) rows of the partitions this worker owns, deleted rows left out."""
    held = held_partitions(app, table)
    for key, value in table.items():
        if value is not None and table.partition_of(key) in held:
            yield key, value
