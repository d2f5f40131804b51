"""Progress agents: task events become task states and run totals.

``task-events`` is keyed by SKU, so the task-state rows (keyed ``<sku>@<run>``)
live on the product's partition. Each real transition — duplicates and replays are
dropped by ``engine.apply_task_event`` — is re-keyed by run id onto
``run-progress``, where one agent per run keeps the counts exact. Both agents take
their events in batches, as the action agents do: the task-events agent folds a
batch's changes of one run into one TRANSITION, and the runs agent writes each run's
row once per batch. A change carries the task-events source of its state, so it
counts once even when a crash loses the state write or the TRANSITION and the agent
sends it again after the restart (``engine.transition_applied``).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from catalogflow.streams.app import Topology
from catalogflow.streams.batches import decode_batch, run_batches
from catalogflow.streams.engine import (
    apply_run_progress,
    apply_task_event,
    budget_pause,
    over_budget,
    resend_transition,
    run_transition,
)
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.records import (
    RunProgress,
    RunState,
    RunTransition,
    TaskEvent,
    TaskState,
    Transition,
    run_progress,
)
from faust.types import EventT

#: Events either agent takes at once: each costs a table read and write, no call out.
EVENTS_PER_BATCH = 500


def register(topology: Topology) -> None:
    app = topology.app
    wait = topology.settings.batch_wait

    @app.agent(topology.inputs["task-events"], name="task-events")
    async def task_events(stream: Any) -> None:
        await run_batches(
            stream, EVENTS_PER_BATCH, wait, partial(fold_task_events, topology), "task events"
        )

    @app.agent(topology.inputs["run-progress"], name="runs")
    async def run_totals(stream: Any) -> None:
        await run_batches(
            stream, EVENTS_PER_BATCH, wait, partial(fold_run_progress, topology), "run progress"
        )


async def fold_task_events(topology: Topology, events: list[EventT[Any]]) -> None:
    """Apply a batch of task events to the task states, then send each run's changes
    as one TRANSITION and confirm them all before the next batch is taken (and so
    before faust can commit this one)."""
    states = topology.tables["task-states"]
    outbox = Outbox(topology)
    changes: dict[str, list[RunTransition]] = {}
    workflows: dict[str, str] = {}
    for event, change in await decode_batch(topology, events, TaskEvent, "task-events"):
        source = (event.message.partition, event.message.offset)
        before: TaskState | None = states.get(change["task_id"])
        after = apply_task_event(before, change, source)
        if after is not None:
            states[change["task_id"]] = after
            transition = run_transition(before, after, change["details"])
        elif before is not None and resend_transition(before, change):
            # The state's own event again (a replay after a crash, or the step
            # reported twice). A crash may have lost the state's TRANSITION after
            # the state reached its changelog: send it again, with the state's
            # source, and the runs agent drops it if it already has it.
            transition = run_transition(_previous(before), before, change["details"])
        else:
            continue
        changes.setdefault(change["run_id"], []).append(transition)
        workflows[change["run_id"]] = change["workflow_id"]
    for run_id, transitions in changes.items():
        folded = run_progress(
            run_id=run_id,
            workflow_id=workflows[run_id],
            kind="TRANSITION",
            at=max(t["at"] for t in transitions),
            transitions=transitions,
        )
        await outbox.send("run-progress", run_id, folded)
    await outbox.confirm()


async def fold_run_progress(topology: Topology, events: list[EventT[Any]]) -> None:
    """Fold a batch of run progress into the runs' totals, writing each run's row once."""
    runs = topology.tables["runs"]
    outbox = Outbox(topology)
    folded: dict[str, RunState] = {}
    for event, progress in await decode_batch(topology, events, RunProgress, "runs"):
        run_id = progress["run_id"]
        before: RunState | None = folded.get(run_id) or runs.get(run_id)
        offset = event.message.offset
        if before is not None and offset <= before["applied_offset"]:
            continue  # replayed after a crash: the row already holds this event
        run = apply_run_progress(before, progress)
        if run is None:
            continue
        run["applied_offset"] = offset
        if over_budget(run):
            # Reaching the budget pauses the run: tasks park where they are, and a
            # person decides whether to resume (and pay) or stop.
            run["budget_reached"] = True
            pause = budget_pause(run, topology.clock.now())
            await outbox.send("workflow-commands", run["workflow_id"], pause)
        folded[run_id] = run
    await outbox.confirm()
    for run_id, run in folded.items():
        runs[run_id] = run


def _previous(state: TaskState) -> Transition | None:
    """The state's previous transition as ``action_id``/``status``, if it had one."""
    history = state["history"]
    return history[-2] if len(history) >= 2 else None
