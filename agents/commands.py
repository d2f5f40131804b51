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

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from catalogflow.agents.trigger import Trigger, definition_of
from catalogflow.streams.actions import ActionRegistry
from catalogflow.streams.app import Topology, decoded
from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.engine import retry_wanted, task_event
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.outbox import Outbox
from catalogflow.streams.partitioner import partition_for
from catalogflow.streams.sync import failed_request_ids, retry_sync_state
from catalogflow.streams.tables import copy_key
from catalogflow.streams.topics import task_topic

Record = dict[str, Any]
log = logging.getLogger(__name__)

CONTROL_STATUS = {"PAUSE": "PAUSED", "RESUME": "RUNNING", "STOP": "STOPPED"}


def command_validator(registry: ActionRegistry) -> Callable[[Record], None]:
    def validate(command: Record) -> None:
        if not command["run_id"]:
            raise InvalidMessage("invalid-record", f"{command['command']} command without run_id")
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
            definition = definition_of(command)
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
    validate_command = command_validator(topology.registry)

    @app.agent(topology.inputs["workflow-commands"], name="commands")
    async def commands(stream: Any) -> None:
        async for _event, command in decoded(
            topology, stream, "WorkflowCommand", "commands", validate_command
        ):
            outbox = Outbox(topology)
            now = datetime.now(UTC)
            run_id = command["run_id"]
            if command["command"] == "RUN":
                definition = definition_of(command)
                await outbox.send(
                    "run-progress",
                    run_id,
                    _progress(command, "STARTED", now)
                    | {
                        "partitions": settings.partitions,
                        "workflow_version": int(command["arguments"].get("version", "1")),
                        "mode": definition.mode,
                        "budget": _budget(command),
                    },
                )
            elif command["command"] in CONTROL_STATUS or command["command"] == "RETRY_FAILED":
                status = CONTROL_STATUS.get(command["command"], "RUNNING")
                await outbox.send(
                    "run-progress",
                    run_id,
                    _progress(command, "CONTROL", now) | {"to_status": status},
                )
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

    def _rows_of(table: Any, run_id: str, partition: int) -> list[tuple[str, Record]]:
        """Rows of ``run_id`` whose product lives on ``partition``."""
        return [
            (key, row)
            for key, row in list(table.items())
            if row is not None
            and row["run_id"] == run_id
            and partition_for(row["sku"], settings.partitions) == partition
        ]

    async def _retry_sync(outbox: Outbox, sync: Record, now: datetime) -> None:
        """Send a failed sync's failed requests again, as the task's next attempt."""
        requests = [failed_requests.get(r) for r in failed_request_ids(sync)]
        if not requests or None in requests:
            log.warning("sync of %s cannot be retried: its requests are gone", sync["task_id"])
            return
        del failed_syncs[sync["task_id"]]
        retry = retry_sync_state(sync)
        pending[sync["task_id"]] = retry
        targets = ", ".join(f"{r['target']}/{r['store_scope']}" for r in requests)
        waiting = task_event(
            {**retry, "outputs": []}, "WAITING", now=now, reason=f"retrying sync to {targets}"
        )
        await outbox.send("task-events", sync["sku"], waiting)
        for request in requests:
            del failed_requests[request["request_id"]]
            await outbox.send("sync-requests", sync["sku"], request)

    @app.agent(topology.inputs["partition-commands"], name="partition-commands")
    async def partition_commands(stream: Any) -> None:
        async for event, command in decoded(
            topology, stream, "WorkflowCommand", "partition-commands", validate_command
        ):
            partition = event.message.partition
            outbox = Outbox(topology)
            now = datetime.now(UTC)
            run_id = command["run_id"]
            kind = command["command"]
            if kind == "RUN":
                controls[copy_key(run_id, partition)] = command
                created = await trigger.scan(outbox, command, partition, now)
                await outbox.send(
                    "run-progress",
                    run_id,
                    _progress(command, "SCANNED", now)
                    | {"partition": partition, "tasks_created": created},
                )
            elif kind in CONTROL_STATUS:
                # Keep the run's definition: continuous triggers need it after a resume.
                key = copy_key(run_id, partition)
                previous = controls.get(key)
                if previous is None or previous["command"] == "STOP":
                    # No such run here, or it is over: a late control changes nothing.
                    await outbox.confirm()
                    continue
                kept = previous["arguments"]
                controls[key] = {**command, "arguments": {**kept, **command["arguments"]}}
                if kind == "RESUME" and _is_continuous(controls[key]):
                    # Changes that arrived while paused did not enter; catch up now.
                    await trigger.scan(outbox, controls[key], partition, now)
                releasing = _rows_of(parked, run_id, partition) if kind != "PAUSE" else []
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
                for task_id, task in _rows_of(failed, run_id, partition):
                    state = states.get(task_id)
                    if not retry_wanted(state, category, action):
                        continue
                    del failed[task_id]
                    retry = {**task, "attempt": task["attempt"] + 1}
                    await outbox.send(
                        "task-events", task["sku"], task_event(retry, "WAITING", now=now)
                    )
                    await outbox.send(task_topic(_action_type(retry)), task["sku"], retry)
                for task_id, sync in _rows_of(failed_syncs, run_id, partition):
                    if not retry_wanted(states.get(task_id), category, action):
                        continue
                    await _retry_sync(outbox, sync, now)
            await outbox.confirm()


def _budget(command: Record) -> float | None:
    text = command["arguments"].get("budget")
    return float(text) if text else None


def _is_continuous(command: Record) -> bool:
    return "definition" in command["arguments"] and definition_of(command).mode == "continuous"


def _action_type(task: Record) -> str:
    definition = WorkflowDefinition.from_dict(json.loads(task["definition"]))
    return definition.actions[task["step_index"]].type


def _progress(command: Record, kind: str, now: datetime) -> Record:
    return {
        "run_id": command["run_id"],
        "workflow_id": command["workflow_id"],
        "kind": kind,
        "partition": -1,
        "partitions": 0,
        "tasks_created": 0,
        "task_id": None,
        "action_id": None,
        "from_action_id": None,
        "from_status": None,
        "to_status": None,
        "workflow_version": 0,
        "mode": "",
        "at": now,
        "cost": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "budget": None,
    }
