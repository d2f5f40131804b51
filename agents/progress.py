"""Progress agents: task events become task states and run totals.

``task-events`` is keyed by SKU, so the task-state rows (keyed ``<sku>@<run>``)
live on the product's partition. Each real transition — duplicates and replays are
dropped by ``engine.apply_task_event`` — is re-keyed by run id onto
``run-progress``, where one agent per run keeps the counts exact. A TRANSITION carries
the task-events source of its state, so it counts once even when a crash loses the
state write or the TRANSITION and the agent sends it again after the restart
(``engine.transition_applied``).
"""

from __future__ import annotations

from typing import Any

from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.engine import (
    apply_run_progress,
    apply_task_event,
    budget_pause,
    over_budget,
    resend_transition,
    transition_applied,
)
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.records import (
    RunProgress,
    RunState,
    TaskEvent,
    TaskState,
    Transition,
    run_progress,
)


def register(topology: Topology) -> None:
    app = topology.app
    states = topology.tables["task-states"]
    runs = topology.tables["runs"]

    @app.agent(topology.inputs["task-events"], name="task-events")
    async def task_events(stream: Any) -> None:
        async for event, change in decoded(topology, stream, TaskEvent, "task-events"):
            source = (event.message.partition, event.message.offset)
            before: TaskState | None = states.get(change["task_id"])
            after = apply_task_event(before, change, source)
            if after is not None:
                states[change["task_id"]] = after
                await _send_transition(topology, before, after, change["details"])
            elif before is not None and resend_transition(before, change):
                # The state's own event again (a replay after a crash, or the step
                # reported twice). A crash may have lost the state's TRANSITION after
                # the state reached its changelog: send it again, with the state's
                # source, and the runs agent drops it if it already has it.
                await _send_transition(topology, _previous(before), before, change["details"])

    @app.agent(topology.inputs["run-progress"], name="runs")
    async def run_totals(stream: Any) -> None:
        async for event, progress in decoded(topology, stream, RunProgress, "runs"):
            before: RunState | None = runs.get(progress["run_id"])
            offset = event.message.offset
            if before is not None and offset <= before["applied_offset"]:
                continue  # replayed after a crash: the row already holds this event
            if before is not None and transition_applied(before, progress):
                continue  # a TRANSITION sent again after a crash (see the task-events agent)
            run = apply_run_progress(before, progress)
            if run is None:
                continue
            run["applied_offset"] = offset
            if over_budget(run):
                # Reaching the budget pauses the run: tasks park where they are, and a
                # person decides whether to resume (and pay) or stop.
                run["budget_reached"] = True
                outbox = Outbox(topology)
                pause = budget_pause(run, topology.clock.now())
                await outbox.send("workflow-commands", run["workflow_id"], pause)
                await outbox.confirm()
            runs[progress["run_id"]] = run


def _previous(state: TaskState) -> Transition | None:
    """The state's previous transition as ``action_id``/``status``, if it had one."""
    history = state["history"]
    return history[-2] if len(history) >= 2 else None


async def _send_transition(
    topology: Topology,
    before: TaskState | Transition | None,
    after: TaskState,
    details: dict[str, str],
) -> None:
    """Send ``after``'s TRANSITION (from ``before``) to run-progress and confirm it.

    It carries the task-events source of ``after``, so the runs agent applies it once
    however often it is sent (``engine.transition_applied``).
    """
    outbox = Outbox(topology)
    await outbox.send(
        "run-progress",
        after["run_id"],
        run_progress(
            run_id=after["run_id"],
            workflow_id=after["workflow_id"],
            kind="TRANSITION",
            task_id=after["task_id"],
            action_id=after["action_id"],
            from_action_id=before["action_id"] if before else None,
            from_status=before["status"] if before else None,
            to_status=after["status"],
            at=after["at"],
            cost=float(details.get("cost", 0.0)),
            input_tokens=int(details.get("input_tokens", 0)),
            output_tokens=int(details.get("output_tokens", 0)),
            source_partition=after["source_partition"],
            source_offset=after["source_offset"],
        ),
    )
    await outbox.confirm()
