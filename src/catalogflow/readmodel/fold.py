"""One fold per source topic: a decoded record (and where it came from) into rows.

Every fold may meet the same record again (a projector that restarts between its
rows and its offsets never does, but a rebuild over a live projector's dead letters
or a replayed topic can): the folds are written so a record seen twice changes
nothing. ``FOLDS`` names, per topic, the record type to decode and the fold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from catalogflow.readmodel import derived
from catalogflow.readmodel.fold_tasks import fold_task_event
from catalogflow.readmodel.tables import (
    commands,
    dead_letters,
    decisions,
    moderation_items,
    runs,
    sync_results,
    workflow_versions,
    workflows,
)
from catalogflow.readmodel.upsert import insert_new, upsert
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.engine import apply_run_progress
from catalogflow.streams.pinned import pinned_definition
from catalogflow.streams.records import (
    DeadLetter,
    ModerationDecision,
    ModerationItem,
    RunProgress,
    RunState,
    SyncResult,
    TaskEvent,
    WorkflowCommand,
    WorkflowVersion,
)
from catalogflow.streams.topics import TopicName


@dataclass(frozen=True)
class Source:
    """Where a record was read: its partition and offset, the broker's timestamp (a
    tombstone's only time) and its key (a tombstone's only name)."""

    partition: int
    offset: int
    timestamp: datetime | None = None
    key: bytes | None = None


def fold_task_events(conn: sa.Connection, event: TaskEvent, source: Source) -> None:
    fold_task_event(conn, event, (source.partition, source.offset))


def fold_run_progress(conn: sa.Connection, progress: RunProgress, source: Source) -> None:
    """The runs agent's own fold (``engine.apply_run_progress``) over the stored RunState."""
    schemas = SchemaStore.shipped()
    record = conn.execute(
        sa.select(runs.c.record).where(runs.c.run_id == progress["run_id"])
    ).scalar()
    before = None if record is None else schemas.decode(record, expected=RunState)
    after = apply_run_progress(before, progress)
    if after is None or after == before:
        return
    upsert(
        conn,
        runs,
        {
            "run_id": after["run_id"],
            "workflow_id": after["workflow_id"],
            "workflow_version": after["workflow_version"],
            "mode": after["mode"],
            "status": after["status"],
            "partitions": after["partitions"],
            "partitions_scanned": after["partitions_scanned"],
            "tasks_created": after["tasks_created"],
            "counts": after["counts"],
            "action_counts": after["action_counts"],
            "started_at": after["started_at"],
            "finished_at": after["finished_at"],
            "cost": after["cost"],
            "input_tokens": after["input_tokens"],
            "output_tokens": after["output_tokens"],
            "budget": after["budget"],
            "budget_reached": after["budget_reached"],
            "record": schemas.encode("RunState", after),
        },
    )


def fold_moderation(conn: sa.Connection, item: ModerationItem | None, source: Source) -> None:
    """A live item is pending (the latest version of it wins); a tombstone (``None``)
    resolves the item its key names, at the tombstone's broker time."""
    if item is None:
        item_id = (source.key or b"").decode()
        task_id = conn.execute(
            sa.select(moderation_items.c.task_id).where(moderation_items.c.item_id == item_id)
        ).scalar()
        if task_id is None:
            return  # compacted away before we saw it live, or never was
        conn.execute(
            moderation_items.update()
            .where(moderation_items.c.item_id == item_id, moderation_items.c.pending)
            .values(pending=False, resolved_at=source.timestamp or _resolved_at(conn, item_id))
        )
        derived.refresh(conn, task_id)
        return
    upsert(
        conn,
        moderation_items,
        {
            "item_id": item["item_id"],
            "task_id": item["task_id"],
            "run_id": item["run_id"],
            "workflow_id": item["workflow_id"],
            "sku": item["sku"],
            "action_id": item["action_id"],
            "review_reason": item["review_reason"],
            "requires_second_approval": item["requires_second_approval"],
            "risk": derived.risk(item),
            "pending": True,
            "created_at": item["created_at"],
            "resolved_at": None,
            "record": SchemaStore.shipped().encode("ModerationItem", item),
        },
    )
    derived.refresh(conn, item["task_id"])


def _resolved_at(conn: sa.Connection, item_id: str) -> datetime:
    """A tombstone without a broker time: the item's last decision, else its creation."""
    last = conn.execute(
        sa.select(sa.func.max(decisions.c.decided_at)).where(decisions.c.item_id == item_id)
    ).scalar()
    if last is not None:
        return last  # type: ignore[no-any-return]
    created: datetime = conn.execute(
        sa.select(moderation_items.c.created_at).where(moderation_items.c.item_id == item_id)
    ).scalar_one()
    return created


def fold_decision(conn: sa.Connection, decision: ModerationDecision, source: Source) -> None:
    """Every decision as published; the task's moderation state follows (derived.py)."""
    insert_new(
        conn,
        decisions,
        {
            "decision_id": decision["decision_id"],
            "item_id": decision["item_id"],
            "task_id": decision["task_id"],
            "sku": decision["sku"],
            "decision": decision["decision"],
            "field": decision["field"],
            "locale": decision["locale"],
            "edited_value": decision["edited_value"],
            "feedback": decision["feedback"],
            "actor_id": decision["actor"]["id"],
            "role": decision["actor"]["role"],
            "decided_at": decision["decided_at"],
        },
    )
    derived.refresh(conn, decision["task_id"])


def fold_sync_result(conn: sa.Connection, result: SyncResult, source: Source) -> None:
    """The latest result per request (a retried request answers again under its id)."""
    upsert(
        conn,
        sync_results,
        {
            "request_id": result["request_id"],
            "task_id": result["task_id"],
            "sku": result["sku"],
            "target": result["target"],
            "store_scope": result["store_scope"],
            "status": result["status"],
            "error_category": result["error_category"],
            "message": result["message"],
            "fields": [dict(f) for f in result["fields"]],
            "at": result["at"],
        },
    )
    derived.refresh(conn, result["task_id"])


def fold_dead_letter(conn: sa.Connection, letter: DeadLetter, source: Source) -> None:
    insert_new(
        conn,
        dead_letters,
        {
            "dead_letter_id": f"{source.partition}-{source.offset}",
            "source_topic": letter["source_topic"],
            "source_partition": letter["source_partition"],
            "source_offset": letter["source_offset"],
            "key": letter["key"],
            "value": letter["value"],
            "reason": letter["reason"],
            "detail": letter["detail"],
            "agent": letter["agent"],
            "failed_at": letter["failed_at"],
        },
    )


def fold_workflow_version(conn: sa.Connection, version: WorkflowVersion, source: Source) -> None:
    """Every version seen; the workflow's row follows its highest version. The
    definition is parsed by the workers' own parser (a bad one fails the fold)."""
    definition = pinned_definition(version["definition"])
    insert_new(
        conn,
        workflow_versions,
        {
            "workflow_id": version["workflow_id"],
            "version": version["version"],
            "content_hash": version["content_hash"],
            "definition": version["definition"],
            "source": version["source"],
            "applied_by": version["applied_by"],
            "applied_at": version["applied_at"],
        },
    )
    latest = conn.execute(
        sa.select(workflows.c.latest_version).where(
            workflows.c.workflow_id == version["workflow_id"]
        )
    ).scalar()
    if latest is not None and latest > version["version"]:
        return
    upsert(
        conn,
        workflows,
        {
            "workflow_id": version["workflow_id"],
            "name": definition.name,
            "mode": definition.mode,
            "latest_version": version["version"],
            "actions": [{"id": a.id, "type": a.type} for a in definition.actions],
            "applied_by": version["applied_by"],
            "applied_at": version["applied_at"],
        },
    )


def fold_command(conn: sa.Connection, command: WorkflowCommand, source: Source) -> None:
    insert_new(
        conn,
        commands,
        {
            "command_id": command["command_id"],
            "workflow_id": command["workflow_id"],
            "command": command["command"],
            "run_id": command["run_id"],
            "issued_by": command["issued_by"],
            "issued_at": command["issued_at"],
            "arguments": dict(command["arguments"]),
        },
    )


@dataclass(frozen=True)
class TopicFold:
    record: type[Any]  # the records.py type the value decodes to
    fold: Callable[[sa.Connection, Any, Source], None]
    tombstones: bool = False  # a None value is a record too (compacted topics)


FOLDS: dict[TopicName, TopicFold] = {
    "workflows": TopicFold(WorkflowVersion, fold_workflow_version),
    "workflow-commands": TopicFold(WorkflowCommand, fold_command),
    "task-events": TopicFold(TaskEvent, fold_task_events),
    "run-progress": TopicFold(RunProgress, fold_run_progress),
    "moderation": TopicFold(ModerationItem, fold_moderation, tombstones=True),
    "moderation-decisions": TopicFold(ModerationDecision, fold_decision),
    "sync-results": TopicFold(SyncResult, fold_sync_result),
    "dead-letters": TopicFold(DeadLetter, fold_dead_letter),
}
