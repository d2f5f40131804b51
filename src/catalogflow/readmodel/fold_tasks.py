"""``task-events`` into ``tasks``, ``task_outputs`` and ``task_history``.

The state is folded with the task-states agent's own rule
(:func:`catalogflow.streams.engine.apply_task_event`): an event it does not apply (a
duplicate, a replay of an earlier step) changes no row, so the read model counts
each task exactly once however often its events are delivered.

A step's output comes on the event of the step that made it (``step_output``): its
history entry and its ``task_outputs`` rows are kept at that event's attempt and time.
The full ``outputs`` list some events carry holds the final values (after a reviewer's
EDIT): those only update the fields already shown, never the history.
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
    step_output = event["step_output"]
    if step_output is not None:
        # The step's new values replace what the action made before (a regenerate's
        # first answer stays in the history, not in the results).
        o = task_outputs.c
        conn.execute(
            task_outputs.delete().where(
                o.task_id == after["task_id"], o.action_id == step_output["action_id"]
            )
        )
        _store_fields(conn, after, step_output, after["attempt"])
        seq = _record_output(conn, after, step_output, input_hash, seq)
    for final in event["outputs"]:
        attempt = _latest_attempt(conn, after["task_id"], final["action_id"])
        _store_fields(conn, after, final, after["attempt"] if attempt is None else attempt)
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
        **_from_results(conn, after["task_id"], after["sku"]),
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


def _latest_attempt(conn: sa.Connection, task_id: str, action_id: str) -> int | None:
    """The last attempt whose fields of ``action_id`` are stored, if any."""
    o = task_outputs.c
    found = conn.execute(
        sa.select(sa.func.max(o.attempt)).where(o.task_id == task_id, o.action_id == action_id)
    ).scalar()
    return None if found is None else int(found)


def _store_fields(
    conn: sa.Connection, state: TaskState, output: ActionOutput, attempt: int
) -> None:
    """Upsert the output's fields as the values of ``attempt`` (the Results tab)."""
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


def _record_output(
    conn: sa.Connection, state: TaskState, output: ActionOutput, input_hash: str | None, seq: int
) -> int:
    """The history entry of one step output, the first time this (action, attempt) is
    seen (at the state's attempt and time); returns the next free ``seq``."""
    attempt = state["attempt"]
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
            "fields": field_results(output, attempt),
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


def _from_results(conn: sa.Connection, task_id: str, sku: str) -> dict[str, Any]:
    """``min_confidence`` and ``search_text`` (the SKU and every generated text, lower
    case, for the ``q`` filter) over the task's current results, which step outputs
    fill as they happen (the slip's full outputs arrive only at its end)."""
    o = task_outputs.c
    rows = conn.execute(sa.select(o.confidence, o.value).where(o.task_id == task_id)).all()
    found = [row.confidence for row in rows if row.confidence is not None]
    texts = [sku]
    for row in rows:
        if isinstance(row.value, str):
            texts.append(row.value)
        elif isinstance(row.value, list):
            texts.extend(str(v) for v in row.value)
    return {
        "min_confidence": min(found) if found else None,
        "search_text": "\n".join(texts).lower(),
    }
