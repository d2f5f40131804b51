"""Command agents: run, pause, resume and stop workflows.

``workflow-commands`` is keyed by workflow id, so one agent sees a workflow's
commands in order. A run has to reach every product, and products are spread over
partitions, so the command is copied to every partition of ``partition-commands``;
the partition agent there works only on the rows of its own partition (the
co-partitioning rule), scanning products for a new run and parking or releasing
tasks for pause and resume. RETRY_FAILED sends a failed action's kept slip back to
its step, and a failed sync's failed requests back to the sink, each as the task's
next attempt (``--category``, ``--action``; a sync failure's action is ``sync``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from catalogflow.agents.trigger import Trigger
from catalogflow.streams.actions import ActionRegistry
from catalogflow.streams.app import Topology, decoded, origin_of
from catalogflow.streams.engine import retry_wanted, run_id_of, sync_slip, task_event
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.partitioner import partition_for
from catalogflow.streams.pinned import pinned_definition
from catalogflow.streams.records import (
    SyncRequest,
    SyncTaskState,
    Task,
    WorkflowCommand,
    run_progress,
)
from catalogflow.streams.signing import checked
from catalogflow.streams.sync import failed_request_ids, retry_sync_state
from catalogflow.streams.tables import copy_key
from catalogflow.streams.topics import task_topic

log = logging.getLogger(__name__)

CONTROL_STATUS = {"PAUSE": "PAUSED", "RESUME": "RUNNING", "STOP": "STOPPED"}


def command_validator(registry: ActionRegistry) -> Callable[[WorkflowCommand], None]:
    def validate(command: WorkflowCommand) -> None:
        run_id_of(command)  # raises for a command without a run
        if command["command"] != "RUN":
            return
        budget = command["arguments"].get("budget")
        if budget is not None:
            try:
                if float(budget) <= 0:
                    raise ValueError
            except ValueError:
                raise InvalidMessage(
                    "invalid-record", f"RUN budget {budget!r} is not a positive number"
                ) from None
        try:
            definition = pinned_definition(command["arguments"]["definition"])
        except (KeyError, ValueError, TypeError, CatalogflowError) as exc:
            raise InvalidMessage(
                "invalid-record", f"RUN command without a usable definition: {exc}"
            ) from None
        missing = sorted({a.type for a in definition.actions} - set(registry.types))
        if missing:
            raise InvalidMessage(
                "invalid-record",
                f"RUN {command['run_id']}: action types {', '.join(missing)} are not installed "
                f"on the workers (installed: {', '.join(registry.types) or 'none'})",
            )

    return validate


def register(topology: Topology) -> None:
    app = topology.app
    settings = topology.settings
    # Both command topics are checked: partition-commands is writable too, and its
    # copies carry the original's signature (a copy is the same record; the worker
    # signs what it sends itself, see Topology.send).
    validate_command = checked(settings, command_validator(topology.registry))

    @app.agent(topology.inputs["workflow-commands"], name="commands")
    async def commands(stream: Any) -> None:
        async for _event, command in decoded(
            topology, stream, WorkflowCommand, "commands", validate_command
        ):
            outbox = Outbox(topology)
            now = topology.clock.now()
            run_id = run_id_of(command)
            workflow_id = command["workflow_id"]
            if command["command"] == "RUN":
                definition = pinned_definition(command["arguments"]["definition"])
                started = run_progress(
                    run_id=run_id,
                    workflow_id=workflow_id,
                    kind="STARTED",
                    at=now,
                    partitions=settings.partitions,
                    workflow_version=int(command["arguments"].get("version", "1")),
                    mode=definition.mode,
                    budget=_budget(command),
                )
                await outbox.send("run-progress", run_id, started)
            elif command["command"] in CONTROL_STATUS or command["command"] == "RETRY_FAILED":
                status = CONTROL_STATUS.get(command["command"], "RUNNING")
                control = run_progress(
                    run_id=run_id, workflow_id=workflow_id, kind="CONTROL", at=now, to_status=status
                )
                await outbox.send("run-progress", run_id, control)
            # The run exists before any partition reports on it.
            await outbox.confirm()
            for partition in range(settings.partitions):
                await outbox.send("partition-commands", None, command, partition=partition)
            await outbox.confirm()

    controls = topology.tables["run-controls"]
    parked = topology.tables["parked"]
    failed = topology.tables["failed"]
    failed_syncs = topology.tables["sync-failed"]
    failed_requests = topology.tables["sync-failed-requests"]
    pending = topology.tables["sync-pending"]
    states = topology.tables["task-states"]
    trigger = Trigger(topology)

    def _rows_of(table: Any, run_id: str, partition: int) -> list[tuple[str, Any]]:
        """Rows of ``run_id`` whose product lives on ``partition`` (a table's rows are
        untyped: faust tables are)."""
        return [
            (key, row)
            for key, row in list(table.items())
            if row is not None
            and row["run_id"] == run_id
            and partition_for(row["sku"], settings.partitions) == partition
        ]

    async def _retry_sync(outbox: Outbox, sync: SyncTaskState, now: datetime) -> None:
        """Send a failed sync's failed requests again, as the task's next attempt."""
        found: list[SyncRequest | None] = [failed_requests.get(r) for r in failed_request_ids(sync)]
        requests = [request for request in found if request is not None]
        if not requests or len(requests) < len(found):
            log.warning("sync of %s cannot be retried: its requests are gone", sync["task_id"])
            return
        del failed_syncs[sync["task_id"]]
        retry = retry_sync_state(sync)
        pending[sync["task_id"]] = retry
        targets = ", ".join(f"{r['target']}/{r['store_scope']}" for r in requests)
        waiting = task_event(
            sync_slip(retry), "WAITING", now=now, reason=f"retrying sync to {targets}"
        )
        await outbox.send("task-events", sync["sku"], waiting)
        for request in requests:
            del failed_requests[request["request_id"]]
            await outbox.send("sync-requests", sync["sku"], request)

    @app.agent(topology.inputs["partition-commands"], name="partition-commands")
    async def partition_commands(stream: Any) -> None:
        async for event, command in decoded(
            topology, stream, WorkflowCommand, "partition-commands", validate_command
        ):
            partition = event.message.partition
            outbox = Outbox(topology)
            now = topology.clock.now()
            run_id = run_id_of(command)
            kind = command["command"]
            if kind == "RUN":
                controls[copy_key(run_id, partition)] = command
                created = await trigger.scan(outbox, command, partition, now, origin_of(event))
                scanned = run_progress(
                    run_id=run_id,
                    workflow_id=command["workflow_id"],
                    kind="SCANNED",
                    at=now,
                    partition=partition,
                    tasks_created=created,
                )
                await outbox.send("run-progress", run_id, scanned)
            elif kind in CONTROL_STATUS:
                # Keep the run's definition: continuous triggers need it after a resume.
                key = copy_key(run_id, partition)
                previous: WorkflowCommand | None = controls.get(key)
                if previous is None or previous["command"] == "STOP":
                    # No such run here, or it is over: a late control changes nothing.
                    await outbox.confirm()
                    continue
                kept = previous["arguments"]
                merged: WorkflowCommand = {
                    **command,
                    "arguments": {**kept, **command["arguments"]},
                }
                controls[key] = merged
                if kind == "RESUME" and _is_continuous(merged):
                    # Changes that arrived while paused did not enter; catch up now.
                    await trigger.scan(outbox, merged, partition, now, origin_of(event))
                releasing: list[tuple[str, Task]] = (
                    _rows_of(parked, run_id, partition) if kind != "PAUSE" else []
                )
                for task_id, task in releasing:
                    del parked[task_id]
                    if kind == "RESUME":
                        await outbox.send(task_topic(_action_type(task)), task["sku"], task)
                    elif kind == "STOP":
                        reason = "run stopped while paused"
                        skipped = task_event(task, "SKIPPED", now=now, reason=reason)
                        await outbox.send("task-events", task["sku"], skipped)
            elif kind == "RETRY_FAILED":
                category = command["arguments"].get("category")
                action = command["arguments"].get("action")
                in_error: list[tuple[str, Task]] = _rows_of(failed, run_id, partition)
                for task_id, task in in_error:
                    state = states.get(task_id)
                    if not retry_wanted(state, category, action):
                        continue
                    del failed[task_id]
                    retry: Task = {**task, "attempt": task["attempt"] + 1}
                    await outbox.send(
                        "task-events", task["sku"], task_event(retry, "WAITING", now=now)
                    )
                    await outbox.send(task_topic(_action_type(retry)), task["sku"], retry)
                for task_id, sync in _rows_of(failed_syncs, run_id, partition):
                    if not retry_wanted(states.get(task_id), category, action):
                        continue
                    await _retry_sync(outbox, sync, now)
            await outbox.confirm()


def _budget(command: WorkflowCommand) -> float | None:
    text = command["arguments"].get("budget")
    return float(text) if text else None


def _is_continuous(command: WorkflowCommand) -> bool:
    arguments = command["arguments"]
    if "definition" not in arguments:
        return False
    return pinned_definition(arguments["definition"]).mode == "continuous"


def _action_type(task: Task) -> str:
    definition = pinned_definition(task["definition"])
    return definition.actions[task["step_index"]].type
