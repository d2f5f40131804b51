"""Progress agents: task events become task states and run totals.

``task-events`` is keyed by SKU, so the task-state rows (keyed ``<sku>@<run>``)
live on the product's partition. Each real transition — duplicates and replays are
dropped by ``engine.apply_task_event`` — is re-keyed by run id onto
``run-progress``, where one agent per run keeps the counts exact.
"""

from __future__ import annotations

from typing import Any

from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.engine import (
    apply_run_progress,
    apply_task_event,
    budget_pause,
    over_budget,
)
from catalogflow.streams.outbox import Outbox


def register(topology: Topology) -> None:
    app = topology.app
    states = topology.tables["task-states"]
    runs = topology.tables["runs"]

    @app.agent(topology.inputs["task-events"], name="task-events")
    async def task_events(stream: Any) -> None:
        async for _event, change in decoded(topology, stream, "TaskEvent", "task-events"):
            before = states.get(change["task_id"])
            after = apply_task_event(before, change)
            if after is None:
                continue
            states[change["task_id"]] = after
            outbox = Outbox(topology)
            await outbox.send(
                "run-progress",
                change["run_id"],
                {
                    "run_id": change["run_id"],
                    "workflow_id": change["workflow_id"],
                    "kind": "TRANSITION",
                    "partition": -1,
                    "partitions": 0,
                    "tasks_created": 0,
                    "task_id": change["task_id"],
                    "action_id": change["action_id"],
                    "from_action_id": before["action_id"] if before else None,
                    "from_status": before["status"] if before else None,
                    "to_status": change["status"],
                    "workflow_version": 0,
                    "mode": "",
                    "at": change["at"],
                    "cost": float(change["details"].get("cost", 0.0)),
                    "input_tokens": int(change["details"].get("input_tokens", 0)),
                    "output_tokens": int(change["details"].get("output_tokens", 0)),
                    "budget": None,
                },
            )
            await outbox.confirm()

    @app.agent(topology.inputs["run-progress"], name="runs")
    async def run_totals(stream: Any) -> None:
        async for event, progress in decoded(topology, stream, "RunProgress", "runs"):
            before = runs.get(progress["run_id"])
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
                run = {**run, "budget_reached": True}
                outbox = Outbox(topology)
                await outbox.send("workflow-commands", run["workflow_id"], budget_pause(run))
                await outbox.confirm()
            runs[progress["run_id"]] = run
