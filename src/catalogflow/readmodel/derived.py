"""The task columns that come from other topics than ``task-events``:
``moderation_state`` (from ``moderation`` and ``moderation-decisions``) and
``sync_status`` (from ``sync-results``).

The projector meets its topics in whatever order the broker hands them over, and a
rebuild meets them in another. So these columns are never updated step by step:
each fold that changes one of their source tables computes them again from those
tables, and so does the first fold of the task itself. The result depends only on
the rows, never on the order they came in, and a rebuild digests the same.
"""

from __future__ import annotations

import sqlalchemy as sa

from catalogflow.readmodel.tables import decisions, moderation_items, sync_results, tasks
from catalogflow.streams.records import ModerationItem
from catalogflow.streams.sync import is_sync_approval

#: Worst first: a task's sync status is the worst of its sync results.
SYNC_SEVERITY = ("ERROR", "CONFLICT", "SYNCED", "UNCHANGED")


def task_columns(conn: sa.Connection, task_id: str) -> dict[str, str | None]:
    return {
        "moderation_state": moderation_state(conn, task_id),
        "sync_status": sync_status(conn, task_id),
    }


def refresh(conn: sa.Connection, task_id: str) -> None:
    """Compute the task's derived columns again (no-op until the task has a row)."""
    conn.execute(_UPDATE, {"the_task": task_id, **task_columns(conn, task_id)})


_UPDATE = tasks.update().where(tasks.c.task_id == sa.bindparam("the_task"))


def moderation_state(conn: sa.Connection, task_id: str) -> str | None:
    """PENDING while any item of the task waits for review. Otherwise the outcome of
    the latest resolved item (by ``created_at``, then item id) that has decisions,
    read from its decisions in ``decided_at`` order: a last decision REGENERATE means
    the step runs again (None until its new item or output comes); a whole-item
    REJECT, or per-field REJECTs only, is REJECTED; any EDIT is EDITED; else APPROVED.
    None when no item of the task was ever decided (never reviewed, or resolved
    without a decision on the topic). Decisions for items the read model does not
    know are kept in ``decisions`` but count for nothing here."""
    items = conn.execute(
        sa.select(moderation_items.c.item_id, moderation_items.c.pending)
        .where(moderation_items.c.task_id == task_id)
        .order_by(moderation_items.c.created_at.desc(), moderation_items.c.item_id.desc())
    ).all()
    if any(item.pending for item in items):
        return "PENDING"
    for item in items:
        made = conn.execute(
            sa.select(decisions.c.decision, decisions.c.field)
            .where(decisions.c.item_id == item.item_id)
            .order_by(decisions.c.decided_at, decisions.c.decision_id)
        ).all()
        if made:
            return _outcome([(d.decision, d.field) for d in made])
    return None


def _outcome(made: list[tuple[str, str | None]]) -> str | None:
    kinds = [kind for kind, _ in made]
    if kinds[-1] == "REGENERATE":
        return None
    if ("REJECT", None) in made or all(kind in ("REJECT", "REGENERATE") for kind in kinds):
        return "REJECTED"
    return "EDITED" if "EDIT" in kinds else "APPROVED"


def sync_status(conn: sa.Connection, task_id: str) -> str | None:
    found = set(
        conn.execute(sa.select(sync_results.c.status).where(sync_results.c.task_id == task_id))
        .scalars()
        .all()
    )
    return next((status for status in SYNC_SEVERITY if status in found), None)


def risk(item: ModerationItem) -> float:
    """Lower is reviewed first: -1 when a check failed on a field (the step's own
    output says ``approved`` false; the item's copy starts unapproved for everyone),
    else the lowest confidence of the fields under review (1.0 when none has one).
    A sync approval's fields are unapproved by design, not by a check."""
    produced = item["task"]["outputs"][-1] if item["task"]["outputs"] else None
    if (
        produced is not None
        and produced["action_id"] == item["action_id"]
        and not is_sync_approval(produced)
        and any(not f["approved"] for f in produced["fields"])
    ):
        return -1.0
    found = [f["confidence"] for f in item["fields"] if f["confidence"] is not None]
    return min(found) if found else 1.0
