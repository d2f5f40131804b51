"""The workflow engine's rules as pure functions over decoded records.

Agents call these and send what they return; nothing here touches Kafka, so the
rules (task creation, routing, duplicate-proof status transitions, run totals) are
unit-tested without a broker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TypedDict, cast

from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.records import (
    ActionOutput,
    FailureCategory,
    Origin,
    RunProgress,
    RunState,
    RunTransition,
    SyncTaskState,
    Task,
    TaskEvent,
    TaskState,
    TaskStatus,
    Transition,
    WorkflowCommand,
    workflow_command,
)

TERMINAL: frozenset[str] = frozenset({"COMPLETED", "SYNCED", "ERROR", "SKIPPED", "REJECTED"})

# How far along a step a status is. Within a step and attempt, a task only moves
# forward; an event that does not is a replay and changes nothing.
_RANK: dict[str, int] = {
    "WAITING": 0,
    "PAUSED": 1,
    "RUNNING": 2,
    "AWAITING_MODERATION": 3,
    "COMPLETED": 4,
    "SYNCED": 4,
    "ERROR": 4,
    "SKIPPED": 4,
    "REJECTED": 4,
}


class Slip(TypedDict):
    """What a task event is made from: every Task has it, and so does the slip of a
    sync's task state (:func:`sync_slip`)."""

    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    step_index: int
    steps: list[str]
    attempt: int
    outputs: list[ActionOutput]


def sync_slip(state: SyncTaskState) -> Slip:
    """The slip of a task whose sync is under way; its outputs went into the requests."""
    return {
        "task_id": state["task_id"],
        "run_id": state["run_id"],
        "workflow_id": state["workflow_id"],
        "sku": state["sku"],
        "step_index": state["step_index"],
        "steps": state["steps"],
        "attempt": state["attempt"],
        "outputs": [],
    }


def task_id_for(run_id: str, sku: str, source_hash: str | None = None) -> str:
    """One task per product per run (per state of its source fields, in continuous
    runs): the id is derived, so a replayed scan or change makes the same task again
    instead of a second one. The SKU comes first so tables keyed by task id place
    rows on the SKU's partition (run ids never contain ``@``)."""
    suffix = f"~{source_hash[:12]}" if source_hash else ""
    return f"{sku}@{run_id}{suffix}"


def run_id_of(command: WorkflowCommand) -> str:
    """The run a command is for; a command without one is invalid (the command agents
    dead-letter it before anything else reads it)."""
    run_id = command["run_id"]
    if not run_id:
        raise InvalidMessage("invalid-record", f"{command['command']} command without run_id")
    return run_id


def new_task(
    *,
    run_id: str,
    workflow_id: str,
    workflow_version: int,
    sku: str,
    steps: list[str],
    definition_json: str,
    input_hash: str,
    now: datetime,
    origin: Origin,
    continuous: bool = False,
) -> Task:
    """A new task; ``origin`` holds the topic, partition and offset of the event that
    created it (the run's partition command for a scan, the product change for a
    continuous workflow)."""
    return {
        "task_id": task_id_for(run_id, sku, input_hash if continuous else None),
        "run_id": run_id,
        "workflow_id": workflow_id,
        "workflow_version": workflow_version,
        "sku": sku,
        "step_index": 0,
        "steps": steps,
        "definition": definition_json,
        "input_hash": input_hash,
        "created_at": now,
        "attempt": 0,
        "outputs": [],
        "origin": {**origin},
        "history": [],
    }


def task_event(
    task: Slip,
    status: TaskStatus,
    *,
    now: datetime,
    reason: str | None = None,
    failure_category: FailureCategory | None = None,
    with_outputs: bool = False,
    spent: ActionOutput | None = None,
) -> TaskEvent:
    """A TaskEvent for ``task``; ``spent`` is the output of the step that just finished:
    its cost and tokens count into the run's totals once (the event is deduplicated),
    and it rides along whole as ``step_output``, so the read model's history records
    each output when and at the attempt it was made (one output: the event stays small)."""
    step = task["step_index"]
    steps = task["steps"]
    action_id = steps[step] if step < len(steps) else (steps[-1] if steps else None)
    return {
        "event_id": f"{task['task_id']}:{task['attempt']}:{step}:{status}",
        "task_id": task["task_id"],
        "run_id": task["run_id"],
        "workflow_id": task["workflow_id"],
        "sku": task["sku"],
        "action_id": action_id,
        "step_index": step,
        "status": status,
        "reason": reason,
        "failure_category": failure_category,
        "at": now,
        "details": _details(task) | ({} if spent is None else _spent(spent)),
        "outputs": list(task["outputs"]) if with_outputs else [],
        "step_output": spent,
    }


def _details(task: Slip) -> dict[str, str]:
    """The attempt, and the input snapshot's hash when the slip is a Task (a sync's
    slip has none): the read model's lineage of each step names its input."""
    details = {"attempt": str(task["attempt"])}
    input_hash = cast(Mapping[str, object], task).get("input_hash")
    if isinstance(input_hash, str) and input_hash:
        details["input_hash"] = input_hash
    return details


def _spent(output: ActionOutput) -> dict[str, str]:
    return {
        "cost": str(output["cost"]),
        "input_tokens": str(output["input_tokens"]),
        "output_tokens": str(output["output_tokens"]),
    }


def advance(task: Task, output: ActionOutput) -> Task:
    """The slip after its current step produced ``output``: outputs accumulate, so
    each later action sees what the earlier ones made."""
    return {
        **task,
        "step_index": task["step_index"] + 1,
        "outputs": [*task["outputs"], output],
        "history": [*task["history"], _step_name(task)],
    }


def _step_name(task: Task) -> str:
    """The step just done: an action id, or ``sync`` for the review before syncing."""
    index, steps = task["step_index"], task["steps"]
    return str(steps[index]) if index < len(steps) else "sync"


def is_last_step(task: Task) -> bool:
    return task["step_index"] >= len(task["steps"])


#: What ``retry-failed --action`` calls the write-back step, where a sync failure happens.
SYNC_ACTION = "sync"


def is_sync_failure(state: TaskState) -> bool:
    """The task state is an Error of its write-back, not of an action.

    Past the last action a task's events name the last action, and its outputs hold
    every step's output, the last one that action's (or the ``sync`` review's); an
    action that failed has only the outputs of the steps before it, none its own
    (action ids are unique within a workflow)."""
    outputs = state["outputs"]
    return bool(
        state["status"] == "ERROR"
        and outputs
        and outputs[-1]["action_id"] in (state["action_id"], SYNC_ACTION)
    )


def retry_wanted(state: TaskState | None, category: str | None, action: str | None) -> bool:
    """``retry-failed`` takes this task: it is in Error, of ``category`` and in
    ``action`` when given (``sync`` names a sync failure)."""
    if state is None or state["status"] != "ERROR":
        return False
    if category and state["failure_category"] != category:
        return False
    if action:
        failed_in = SYNC_ACTION if is_sync_failure(state) else state["action_id"]
        return failed_in == action
    return True


#: The numbers a task event's ``details`` may carry, each with how it is read.
_COUNTED: dict[str, type[int] | type[float]] = {
    "attempt": int,
    "input_tokens": int,
    "output_tokens": int,
    "cost": float,
}


def check_task_event(event: TaskEvent) -> None:
    """Refuse a task event whose ``details`` the engine cannot count: the attempt and
    the token counts are integers from 0 below 2^31, the cost a finite number. The
    details are strings on the wire, and one that does not parse would otherwise stop
    the task-events agent on every replay of its batch (the agent dead-letters it)."""
    for key, kind in _COUNTED.items():
        text = event["details"].get(key)
        if text is None:
            continue
        try:
            number = kind(text)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and 0 <= number < 2**31):
            raise InvalidMessage(
                "invalid-record",
                f"task event {event['event_id'][:80]!r}: details.{key} is {text[:40]!r}, "
                f"not {'an integer' if kind is int else 'a number'} from 0 below 2^31",
            )


def _event_progress(event: TaskEvent) -> tuple[int, int, int]:
    attempt = int(event["details"].get("attempt", "0"))
    return (attempt, event["step_index"], _RANK[event["status"]])


def _state_progress(state: TaskState) -> tuple[int, int, int]:
    return (state["attempt"], state["step_index"], _RANK[state["status"]])


def apply_task_event(
    state: TaskState | None,
    event: TaskEvent,
    source: tuple[int, int] = (-1, -1),
) -> TaskState | None:
    """The task state after ``event``, or ``None`` if the event changes nothing
    (a duplicate or a replay of an earlier step): at-least-once delivery upstream
    becomes exactly-once counting downstream. ``source`` is the event's task-events
    (partition, offset), kept on the state (see :func:`transition_applied`)."""
    event_progress = _event_progress(event)
    if state is not None and event_progress <= _state_progress(state):
        return None
    transition: Transition = {
        "status": event["status"],
        "action_id": event["action_id"],
        "reason": event["reason"],
        "at": event["at"],
    }
    return {
        "task_id": event["task_id"],
        "run_id": event["run_id"],
        "workflow_id": event["workflow_id"],
        "sku": event["sku"],
        "action_id": event["action_id"],
        "step_index": event["step_index"],
        "status": event["status"],
        "reason": event["reason"],
        "failure_category": event["failure_category"],
        "at": event["at"],
        "outputs": event["outputs"] or (state["outputs"] if state else []),
        "history": [*(state["history"] if state else []), transition],
        "attempt": event_progress[0],
        "source_partition": source[0],
        "source_offset": source[1],
    }


def resend_transition(state: TaskState | None, event: TaskEvent) -> bool:
    """``event`` is the state's own last transition again (its replay after a crash,
    or the step reported twice), and the state knows its source: its TRANSITION may
    have been lost in the crash, so send it again (:func:`transition_applied` drops
    it if the run has it). A state from before sources were recorded cannot be sent
    again safely, so it is not."""
    return (
        state is not None
        and state["source_offset"] >= 0
        and _event_progress(event) == _state_progress(state)
    )


def run_transition(
    before: TaskState | Transition | None, after: TaskState, details: dict[str, str]
) -> RunTransition:
    """What the run counts of a task's change from ``before`` to ``after``: the cost of
    the step that ended with it (from the event's ``details``) and the task-events
    source of ``after``, so the runs agent applies it once however often it is sent."""
    return {
        "task_id": after["task_id"],
        "action_id": after["action_id"],
        "from_action_id": before["action_id"] if before else None,
        "from_status": before["status"] if before else None,
        "to_status": after["status"],
        "at": after["at"],
        "cost": float(details.get("cost", 0.0)),
        "input_tokens": int(details.get("input_tokens", 0)),
        "output_tokens": int(details.get("output_tokens", 0)),
        "source_partition": after["source_partition"],
        "source_offset": after["source_offset"],
    }


def transitions_in(progress: RunProgress) -> list[RunTransition]:
    """The changes a TRANSITION carries: its folded list, or the one change in the
    flat fields of a TRANSITION written before changes were folded."""
    if progress["kind"] != "TRANSITION":
        return []
    if progress["transitions"] or progress["task_id"] is None:
        return progress["transitions"]
    return [
        {
            "task_id": progress["task_id"],
            "action_id": progress["action_id"],
            "from_action_id": progress["from_action_id"],
            "from_status": progress["from_status"],
            "to_status": progress["to_status"] or "-",
            "at": progress["at"],
            "cost": progress["cost"],
            "input_tokens": progress["input_tokens"],
            "output_tokens": progress["output_tokens"],
            "source_partition": progress["source_partition"],
            "source_offset": progress["source_offset"],
        }
    ]


def transition_applied(run: RunState, transition: RunTransition) -> bool:
    """The run already holds this change: one from the same task-events partition at
    or below the highest source offset applied.

    The task-events agent writes the task states and sends their changes to
    ``run-progress`` separately, and either may be lost in a crash: a state (its
    changelog write is buffered by faust and can trail the TRANSITION) or the
    TRANSITION. After a restart it therefore sends the change of a state again
    whenever the state's event comes back, always with the source of the state. The
    agent handles a partition's events in order, sends one TRANSITION per run and
    batch and confirms them before the next batch, so per source partition the
    applied changes have increasing offsets and only the last batch can be missing.
    """
    offset = transition["source_offset"]
    if offset < 0:
        return False
    applied = run["applied_sources"].get(str(transition["source_partition"]), -1)
    return offset <= applied


def new_run(progress: RunProgress) -> RunState:
    return {
        "run_id": progress["run_id"],
        "workflow_id": progress["workflow_id"],
        "workflow_version": progress["workflow_version"],
        "mode": progress["mode"],
        "status": "RUNNING",
        "partitions": progress["partitions"],
        "partitions_scanned": 0,
        "tasks_created": 0,
        "counts": {},
        "action_counts": {},
        "started_at": progress["at"],
        "finished_at": None,
        "cost": 0.0,
        "input_tokens": 0,
        "output_tokens": 0,
        "budget": progress["budget"],
        "budget_reached": False,
        "applied_offset": -1,
        "scanned": {},
        "applied_sources": {},
    }


def apply_run_progress(run: RunState | None, progress: RunProgress) -> RunState | None:
    """Fold one progress event into the run's totals; ``None`` if there is no run."""
    if progress["kind"] == "STARTED":
        return new_run(progress) if run is None else run
    if run is None:
        return None
    run = {
        **run,
        "counts": dict(run["counts"]),
        "action_counts": dict(run["action_counts"]),
        "scanned": dict(run["scanned"]),
        "applied_sources": dict(run["applied_sources"]),
    }
    kind = progress["kind"]
    if kind == "SCANNED":
        # A scan repeated after a crash reports its partition again: set, never add.
        run["scanned"][str(progress["partition"])] = progress["tasks_created"]
        run["partitions_scanned"] = len(run["scanned"])
        if run["mode"] == "one_time":  # continuous runs count tasks as they appear
            run["tasks_created"] = sum(run["scanned"].values())
    elif kind == "TRANSITION":
        for transition in transitions_in(progress):
            if not transition_applied(run, transition):  # else sent again after a crash
                _apply_transition(run, transition)
    elif kind == "CONTROL" and run["status"] not in ("STOPPED", "COMPLETED"):
        run["status"] = progress["to_status"] or run["status"]
        if run["status"] == "STOPPED":
            run["finished_at"] = progress["at"]
    if _all_done(run):
        run["status"] = "COMPLETED"
        run["finished_at"] = progress["at"]
    return run


def _apply_transition(run: RunState, transition: RunTransition) -> None:
    if transition["from_status"] is None and run["mode"] == "continuous":
        run["tasks_created"] += 1
    if transition["source_offset"] >= 0:
        run["applied_sources"][str(transition["source_partition"])] = transition["source_offset"]
    to_status = transition["to_status"]
    _move(run["counts"], transition["from_status"], to_status)
    run["cost"] += transition["cost"]
    run["input_tokens"] += transition["input_tokens"]
    run["output_tokens"] += transition["output_tokens"]
    before = (
        f"{transition['from_action_id'] or '-'}:{transition['from_status']}"
        if transition["from_status"]
        else None
    )
    _move(run["action_counts"], before, f"{transition['action_id'] or '-'}:{to_status}")
    if run["status"] == "COMPLETED" and to_status not in TERMINAL:
        run["status"], run["finished_at"] = "RUNNING", None  # retried tasks re-open it


def over_budget(run: RunState) -> bool:
    """The run has just reached its budget: time to pause it (once)."""
    budget = run["budget"]
    return budget is not None and not run["budget_reached"] and run["cost"] >= budget


def budget_pause(run: RunState, now: datetime) -> WorkflowCommand:
    """The PAUSE command a run sends itself when it reaches its budget."""
    return workflow_command(
        command_id=f"{run['run_id']}:budget",
        workflow_id=run["workflow_id"],
        command="PAUSE",
        run_id=run["run_id"],
        issued_by="budget",
        issued_at=now,
        arguments={"reason": f"budget {run['budget']} reached at cost {run['cost']:.4f}"},
    )


def _all_done(run: RunState) -> bool:
    if run["mode"] != "one_time" or run["status"] in ("COMPLETED", "STOPPED"):
        return False
    if run["partitions_scanned"] < run["partitions"]:
        return False
    terminal = sum(count for status, count in run["counts"].items() if status in TERMINAL)
    return terminal >= run["tasks_created"]


def _move(counts: dict[str, int], before: str | None, after: str) -> None:
    if before is not None:
        counts[before] = counts.get(before, 0) - 1
        if counts[before] <= 0:
            del counts[before]
    counts[after] = counts.get(after, 0) + 1
