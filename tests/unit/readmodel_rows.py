"""A small read model, rows inserted straight through the tables (no projector), for
the query, API and role-matrix tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from catalogflow.streams.codec import SchemaStore

from catalogflow.readmodel import tables as t
from catalogflow.readmodel.store import engine_for, upgrade
from tests.unit.test_moderation import field as moderation_field
from tests.unit.test_moderation import item as moderation_item

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RUN = "run-1"
WORKFLOW = "wf-describe"
#: Tasks of RUN: (index, status, failure category, extract confidence, describe confidence)
TASKS: list[tuple[int, str, str | None, float | None, float | None]] = [
    (i, status, category, c1, c2)
    for i, (status, category, c1, c2) in enumerate(
        [
            ("COMPLETED", None, 0.9, 0.95),
            ("COMPLETED", None, 0.4, 0.8),
            ("ERROR", "INVALID_OUTPUT", 0.3, None),
            ("AWAITING_MODERATION", None, 0.7, 0.45),
            ("SYNCED", None, 0.99, 0.99),
            ("WAITING", None, None, None),
            ("ERROR", "PROVIDER_LIMITATION", None, None),
        ]
    )
]


def sku(i: int) -> str:
    return f"SKU-{i:03d}"


def task_id(i: int) -> str:
    return f"{sku(i)}@{RUN}"


def read_model(path: Path) -> sa.Engine:
    engine = engine_for(f"sqlite:///{path / 'read-model.sqlite'}")
    upgrade(engine)
    fill(engine)
    return engine


def fill(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(t.workflows), [_workflow()])
        conn.execute(sa.insert(t.workflow_versions), [_version(1), _version(2)])
        conn.execute(sa.insert(t.runs), [_run(RUN, T0), _run("run-0", T0 - timedelta(days=1))])
        conn.execute(sa.insert(t.tasks), [_task(*row) for row in TASKS])
        outputs = [o for row in TASKS for o in _outputs(*row)]
        conn.execute(sa.insert(t.task_outputs), outputs)
        conn.execute(sa.insert(t.task_history), _history())
        conn.execute(sa.insert(t.decisions), [_decision()])
        conn.execute(sa.insert(t.sync_results), [_sync()])
        conn.execute(sa.insert(t.moderation_items), _moderation())
        conn.execute(sa.insert(t.dead_letters), [_dead_letter(i) for i in range(3)])


def _workflow() -> dict[str, Any]:
    return {
        "workflow_id": WORKFLOW,
        "name": "Describe",
        "mode": "one_time",
        "latest_version": 2,
        "actions": [
            {"id": "extract", "type": "extraction"},
            {"id": "describe", "type": "generation"},
        ],
        "applied_by": "julia",
        "applied_at": T0 - timedelta(days=2),
    }


def _version(v: int) -> dict[str, Any]:
    return {
        "workflow_id": WORKFLOW,
        "version": v,
        "content_hash": f"sha256:{v}",
        "definition": f"id: {WORKFLOW}\n# v{v}\n",
        "source": "cli",
        "applied_by": "julia",
        "applied_at": T0 - timedelta(days=3 - v),
    }


def _run(run_id: str, started: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "workflow_id": WORKFLOW,
        "workflow_version": 2,
        "mode": "one_time",
        "status": "RUNNING",
        "partitions": 4,
        "partitions_scanned": 4,
        "tasks_created": 7,
        "counts": {"COMPLETED": 2, "ERROR": 2, "AWAITING_MODERATION": 1, "SYNCED": 1, "WAITING": 1},
        "action_counts": {
            "describe:COMPLETED": 2,
            "extract:ERROR": 2,
            "describe:AWAITING_MODERATION": 1,
            "describe:SYNCED": 1,
            "-:WAITING": 1,
            "extract:RUNNING": 0,
        },
        "started_at": started,
        "finished_at": None,
        "cost": 0.5,
        "input_tokens": 1000,
        "output_tokens": 200,
        "budget": None,
        "budget_reached": False,
        "record": b"",
    }


def _task(
    i: int, status: str, category: str | None, c1: float | None, c2: float | None
) -> dict[str, Any]:
    confidences = [c for c in (c1, c2) if c is not None]
    return {
        "task_id": task_id(i),
        "run_id": RUN,
        "workflow_id": WORKFLOW,
        "sku": sku(i),
        "action_id": "describe" if c2 is not None else ("extract" if c1 is not None else None),
        "step_index": 1,
        "status": status,
        "reason": None,
        "failure_category": category,
        "attempt": 0,
        "at": T0 + timedelta(minutes=i),
        "min_confidence": min(confidences) if confidences else None,
        "moderation_state": "PENDING" if status == "AWAITING_MODERATION" else None,
        "sync_status": "SYNCED" if status == "SYNCED" else None,
        "search_text": f"{sku(i).lower()} crunchy kibble number {i}",
        "cost": 0.01,
        "input_tokens": 100,
        "output_tokens": 20,
        "record": b"",
    }


def _outputs(
    i: int, _s: str, _c: str | None, c1: float | None, c2: float | None
) -> list[dict[str, Any]]:
    out = []
    for action, confidence in (("extract", c1), ("describe", c2)):
        if confidence is None:
            continue
        out.append(
            {
                "task_id": task_id(i),
                "action_id": action,
                "attempt": 0,
                "field": "flavor" if action == "extract" else "description",
                "locale": "" if action == "extract" else "de_DE",
                "run_id": RUN,
                "sku": sku(i),
                "value": "Chicken" if action == "extract" else f'Text {i}, "quoted"',
                "reasoning": "read it",
                "confidence": confidence,
                "evidence": None,
                "approved": False,
                "model": "gpt-4o-mini",
                "prompt_version": "v2",
            }
        )
    return out


def _history() -> list[dict[str, Any]]:
    base = {
        "task_id": task_id(0),
        "run_id": RUN,
        "sku": sku(0),
        "attempt": 0,
        "reason": None,
        "failure_category": None,
        "input_hash": None,
        "model": None,
        "prompt_version": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "fields": [],
    }
    output_field = {
        "action_id": "extract",
        "attempt": 0,
        "field": "flavor",
        "locale": None,
        "value": "Chicken",
        "reasoning": "read it",
        "confidence": 0.9,
        "evidence": None,
        "approved": False,
        "model": "gpt-4o-mini",
        "prompt_version": "v2",
    }
    return [
        {**base, "seq": 0, "kind": "transition", "at": T0, "action_id": None, "status": "WAITING"},
        {
            **base,
            "seq": 1,
            "kind": "output",
            "at": T0 + timedelta(seconds=10),
            "action_id": "extract",
            "status": None,
            "input_hash": "sha256:in",
            "model": "gpt-4o-mini",
            "prompt_version": "v2",
            "input_tokens": 80,
            "output_tokens": 12,
            "cost": 0.001,
            "fields": [output_field],
        },
        {
            **base,
            "seq": 2,
            "kind": "transition",
            "at": T0 + timedelta(seconds=40),
            "action_id": "describe",
            "status": "COMPLETED",
        },
    ]


def _decision() -> dict[str, Any]:
    return {
        "decision_id": "dec-1",
        "item_id": "item-done",
        "task_id": task_id(0),
        "sku": sku(0),
        "decision": "EDIT",
        "field": "flavor",
        "locale": None,
        "edited_value": "Chicken & rice",
        "feedback": None,
        "actor_id": "mia",
        "role": "EDITOR",
        "decided_at": T0 + timedelta(seconds=20),
    }


def _sync() -> dict[str, Any]:
    return {
        "request_id": "req-1",
        "task_id": task_id(0),
        "sku": sku(0),
        "target": "magento",
        "store_scope": "default",
        "status": "SYNCED",
        "error_category": None,
        "message": None,
        "fields": [{"attribute": "flavor", "status": "SYNCED", "message": None}],
        "at": T0 + timedelta(seconds=30),
    }


def _moderation() -> list[dict[str, Any]]:
    store = SchemaStore.shipped()
    rows = []
    for item_id, risk, pending, minutes in (
        ("item-low", 0.45, True, 3),
        ("item-check", -1.0, True, 5),
        ("item-late", 0.45, True, 9),
        ("item-done", 0.2, False, 1),
    ):
        item = moderation_item(moderation_field(confidence=0.45))
        item["item_id"] = item_id
        rows.append(
            {
                "item_id": item_id,
                "task_id": item["task_id"],
                "run_id": item["run_id"],
                "workflow_id": item["workflow_id"],
                "sku": item["sku"],
                "action_id": item["action_id"],
                "review_reason": item["review_reason"],
                "requires_second_approval": False,
                "risk": risk,
                "pending": pending,
                "created_at": T0 + timedelta(minutes=minutes),
                "resolved_at": None,
                "record": store.encode("ModerationItem", item),
            }
        )
    return rows


def _dead_letter(i: int) -> dict[str, Any]:
    return {
        "dead_letter_id": f"0-{i}",
        "source_topic": "catalogflow.task-events",
        "source_partition": 0,
        "source_offset": 10 + i,
        "key": f"SKU-{i}".encode(),
        "value": b"\x00\x01garbage",
        "reason": "bad-magic" if i else "unsigned-command",
        "detail": "does not start with C3 01",
        "agent": "projector",
        "failed_at": T0 + timedelta(minutes=i),
    }
