"""``task-events`` into ``tasks``, ``task_outputs`` and ``task_history``.

The state is folded with the task-states agent's own rule
(:func:`catalogflow.streams.engine.apply_task_event`): an event it does not apply (a
duplicate, a replay of an earlier step) changes no row, so the read model counts
each task exactly once however often its events are delivered.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from catalogflow.readmodel import derived
from catalogflow.readmodel.tables import task_history, task_outputs, tasks
from catalogflow.readmodel.upsert import upsert
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.engine import apply_task_event
from catalogflow.streams.records import ActionOutput, TaskEvent, TaskState

# Built once and run with bound parameters (see upsert.py for why).
_INSERT_HISTORY = task_history.insert()
_INSERT_TASK = tasks.insert()
_UPDATE_TASK = tasks.update().where(tasks.c.task_id == sa.bindparam("the_task"))


def fold_task_event(conn: sa.Connection, event: TaskEvent, source: tuple[int, int]) -> bool:
    """Fold one event (``source``: its task-events partition and offset); true if it
    changed the task."""
    schemas = SchemaStore.shipped()
    row = conn.execute(
        sa.select(tasks.c.record, tasks.c.cost, tasks.c.input_tokens, tasks.c.output_tokens).where(
            tasks.c.task_id == event["task_id"]
        )
    ).first()
    before = None if row is None else schemas.decode(row.record, expected=TaskState)
    after = apply_task_event(before, event, source)
    if after is None:
        return False
    details = event["details"]
    input_hash = details.get("input_hash")
    seq = _next_seq(conn, event["task_id"])
    for output in _new_outputs(before, after):
        seq = _record_output(conn, after, output, input_hash, seq)
    conn.execute(
        _INSERT_HISTORY,
        {
            "task_id": after["task_id"],
            "seq": seq,
            "run_id": after["run_id"],
            "sku": after["sku"],
            "kind": "transition",
            "at": after["at"],
            "action_id": after["action_id"],
            "attempt": after["attempt"],
            "status": after["status"],
            "reason": after["reason"],
            "failure_category": after["failure_category"],
            "input_hash": input_hash,
            "model": None,
            "prompt_version": None,
            "input_tokens": 0,  # a step's tokens and cost are on its output entry
            "output_tokens": 0,
            "cost": 0.0,
            "fields": [],
        },
    )
    spent = (
        float(details.get("cost", 0.0)),
        int(details.get("input_tokens", 0)),
        int(details.get("output_tokens", 0)),
    )
    totals = (0.0, 0, 0) if row is None else (row.cost, row.input_tokens, row.output_tokens)
    values: dict[str, Any] = {
        "run_id": after["run_id"],
        "workflow_id": after["workflow_id"],
        "sku": after["sku"],
        "action_id": after["action_id"],
        "step_index": after["step_index"],
        "status": after["status"],
        "reason": after["reason"],
        "failure_category": after["failure_category"],
        "attempt": after["attempt"],
        "at": after["at"],
        "min_confidence": _min_confidence(after["outputs"]),
        "search_text": _search_text(after),
        "cost": totals[0] + spent[0],
        "input_tokens": totals[1] + spent[1],
        "output_tokens": totals[2] + spent[2],
        "record": schemas.encode("TaskState", after),
    }
    if row is None:
        # Moderation and sync rows may have been folded first (other topics): take
        # what they say now; from here on their own folds keep these columns.
        derived_now = derived.task_columns(conn, after["task_id"])
        conn.execute(_INSERT_TASK, {"task_id": after["task_id"], **values, **derived_now})
    else:
        conn.execute(_UPDATE_TASK, {"the_task": after["task_id"], **values})
    return True


def _new_outputs(before: TaskState | None, after: TaskState) -> list[ActionOutput]:
    """The outputs ``after`` holds that ``before`` did not: a slip carries every earlier
    step's output forward unchanged, so one at the same place and equal is not new."""
    old = before["outputs"] if before else []
    return [o for i, o in enumerate(after["outputs"]) if i >= len(old) or old[i] != o]


def _record_output(
    conn: sa.Connection, state: TaskState, output: ActionOutput, input_hash: str | None, seq: int
) -> int:
    """Store one step output's fields and, the first time this (action, attempt) is
    seen, its history entry; returns the next free ``seq``."""
    attempt = state["attempt"]
    fields = field_results(output, attempt)
    for field in output["fields"]:
        upsert(
            conn,
            task_outputs,
            {
                "task_id": state["task_id"],
                "action_id": output["action_id"],
                "attempt": attempt,
                "field": field["field"],
                "locale": field["locale"] or "",
                "run_id": state["run_id"],
                "sku": state["sku"],
                "value": field["value"],
                "reasoning": field["reasoning"],
                "confidence": field["confidence"],
                "evidence": field["evidence"],
                "approved": field["approved"],
                "model": output["model"],
                "prompt_version": output["prompt_version"],
            },
        )
    seen = conn.execute(
        sa.select(sa.literal(1))
        .select_from(task_history)
        .where(
            task_history.c.task_id == state["task_id"],
            task_history.c.kind == "output",
            task_history.c.action_id == output["action_id"],
            task_history.c.attempt == attempt,
        )
        .limit(1)
    ).first()
    if seen is not None:
        return seq
    conn.execute(
        _INSERT_HISTORY,
        {
            "task_id": state["task_id"],
            "seq": seq,
            "run_id": state["run_id"],
            "sku": state["sku"],
            "kind": "output",
            "at": state["at"],
            "action_id": output["action_id"],
            "attempt": attempt,
            "status": None,
            "reason": output["skipped"],
            "failure_category": None,
            "input_hash": input_hash,
            "model": output["model"],
            "prompt_version": output["prompt_version"],
            "input_tokens": output["input_tokens"],
            "output_tokens": output["output_tokens"],
            "cost": output["cost"],
            "fields": fields,
        },
    )
    return seq + 1


def field_results(output: ActionOutput, attempt: int) -> list[dict[str, Any]]:
    """The output's fields as ``views.FieldResult`` dicts (the history's ``fields``)."""
    return [
        {
            "action_id": output["action_id"],
            "attempt": attempt,
            "field": f["field"],
            "locale": f["locale"],
            "value": f["value"],
            "reasoning": f["reasoning"],
            "confidence": f["confidence"],
            "evidence": f["evidence"],
            "approved": f["approved"],
            "model": output["model"],
            "prompt_version": output["prompt_version"],
        }
        for f in output["fields"]
    ]


def _next_seq(conn: sa.Connection, task_id: str) -> int:
    last = conn.execute(
        sa.select(sa.func.max(task_history.c.seq)).where(task_history.c.task_id == task_id)
    ).scalar()
    return 0 if last is None else int(last) + 1


def _min_confidence(outputs: list[ActionOutput]) -> float | None:
    found = [f["confidence"] for o in outputs for f in o["fields"] if f["confidence"] is not None]
    return min(found) if found else None


def _search_text(state: TaskState) -> str:
    """The SKU and every generated text, lower case, for the ``q`` filter."""
    texts = [state["sku"]]
    for output in state["outputs"]:
        for field in output["fields"]:
            value = field["value"]
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, list):
                texts.extend(str(v) for v in value)
    return "\n".join(texts).lower()
