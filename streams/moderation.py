"""The worker's side of moderation: the gate and the rules that fold a person's
decisions into an item, as pure functions over records (the reviewer's tools, which
read the queue and send decisions, are :mod:`catalogflow.streams.review`).

After an action, :func:`review_reason` decides from the action's moderation policy
whether its output waits for a person. A waiting output becomes a ModerationItem,
keyed by :func:`item_id`, held in the compacted ``moderation`` topic. Decisions fold
into the item with :func:`apply_decision` until it is resolved: approved (its
fields, as decided, continue down the chain), rejected (the task ends Rejected) or
sent back to the action with the reviewer's feedback.

Values a check flagged (``approved`` false on the action's output, e.g. evidence
that does not occur in the source) always go to review, whatever the policy: a
policy may skip review, but never for a value that failed a check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from catalogflow.streams.definitions import ModerationPolicy
from catalogflow.streams.records import (
    ActionOutput,
    AttributeValue,
    DecisionSummary,
    FieldOutput,
    ModerationDecision,
    ModerationItem,
    Role,
    Task,
)

Outcome = Literal["pending", "approved", "rejected", "regenerate", "ignored"]

#: Roles whose approval counts as the second, moderator approval: an admin may do
#: whatever a moderator may. An EDITOR's never does.
MODERATING_ROLES: frozenset[Role] = frozenset({"MODERATOR", "ADMIN"})


def item_id(task: Task) -> str:
    """One item per task, step and attempt. The task id comes first, so the item lives
    on the product's partition; a regenerated step gets a new item."""
    return f"{task['task_id']}#{task['step_index']}.{task['attempt']}"


def review_reason(
    policy: ModerationPolicy, fields: Sequence[FieldOutput], task_id: str
) -> str | None:
    """Why these output fields must wait for a person, or None when they need not."""
    flagged = [_label(f) for f in fields if not f["approved"]]
    if flagged:
        return f"a check failed for {', '.join(flagged)}: never approved automatically"
    if not fields or policy.mode == "none":
        return None
    lowest = min((_confidence(f) for f in fields), default=1.0)
    if policy.auto_approve_above is not None and lowest >= policy.auto_approve_above:
        if policy.audit_sample and _sampled(task_id, policy.audit_sample):
            return f"audit sample ({policy.audit_sample:.0%} of auto-approved results)"
        return None
    if policy.mode == "always":
        return "the action's moderation policy reviews every result"
    threshold = policy.threshold if policy.threshold is not None else 1.0
    low = [_label(f) for f in fields if _confidence(f) < threshold]
    if low:
        return f"confidence below {threshold:g} for {', '.join(low)}"
    return None


def approve_all(fields: Sequence[FieldOutput]) -> list[FieldOutput]:
    return [{**f, "approved": True} for f in fields]


def new_item(
    task: Task,
    output: ActionOutput,
    *,
    source_values: Sequence[AttributeValue],
    reason: str,
    policy: ModerationPolicy,
    now: datetime,
    review_fields: Sequence[FieldOutput] | None = None,
) -> ModerationItem:
    """The review item for ``output``, produced by the current step of ``task`` (the
    slip before it advances, so it can go back to the action or on to the next).

    ``review_fields`` are the fields a person decides on, when not all of the output's
    (the others were decided from memory and wait in the slip's copy of the output;
    :func:`reviewed_output` puts them back)."""
    return {
        "item_id": item_id(task),
        "task_id": task["task_id"],
        "run_id": task["run_id"],
        "workflow_id": task["workflow_id"],
        "sku": task["sku"],
        "action_id": output["action_id"],
        "task": {**task, "outputs": [*task["outputs"], {**output}]},
        "source_values": list(source_values),
        "fields": [
            {**f, "approved": False}
            for f in (output["fields"] if review_fields is None else review_fields)
        ],
        "review_reason": reason,
        "requires_second_approval": policy.second_approval,
        "decisions": [],
        "created_at": now,
    }


@dataclass(frozen=True)
class Folded:
    """An item after one decision: ``item`` is None once it is resolved."""

    outcome: Outcome
    item: ModerationItem | None
    note: str  # what happened, for the task's history


def apply_decision(item: ModerationItem, decision: ModerationDecision) -> Folded:
    """Fold one decision into a pending item."""
    kind = decision["decision"]
    actor = decision["actor"]
    who = f"{actor['id']} ({actor['role'].lower()})"
    targets = _targets(item["fields"], decision)
    if decision["field"] is not None and not targets:
        where = decision["field"] + (f"@{decision['locale']}" if decision["locale"] else "")
        return Folded("ignored", {**item}, f"{kind} by {who}: the item has no field {where}")
    if kind == "REGENERATE":
        return Folded("regenerate", None, f"regenerate asked by {who}: {decision['feedback']}")
    if kind == "REJECT" and decision["field"] is None:
        return Folded("rejected", None, f"rejected by {who}")
    fields: list[FieldOutput] = [{**f} for f in item["fields"]]
    change = None
    for index in targets:
        if kind == "EDIT":
            before = fields[index]["value"]
            change = f"{before!r} -> {decision['edited_value']!r}"
            fields[index] = {
                **fields[index],
                "value": decision["edited_value"],
                "approved": True,
                "confidence": 1.0,
                "evidence": None,
                "reasoning": f"Human-authored by {who}; the model proposed {before!r}.",
            }
        elif kind == "APPROVE":
            fields[index] = {**fields[index], "approved": True}
    summary: DecisionSummary = {
        "decision": kind,
        "actor_id": actor["id"],
        "role": actor["role"],
        "at": decision["decided_at"],
        "field": decision["field"],
        "locale": decision["locale"],
        "change": change,
    }
    updated: ModerationItem = {**item, "fields": fields, "decisions": [*item["decisions"], summary]}
    rejected = _rejected(updated)
    if not all(f["approved"] or i in rejected for i, f in enumerate(fields)):
        return Folded("pending", updated, f"{kind} by {who}")
    kept = [f for i, f in enumerate(fields) if i not in rejected]
    if not kept:
        return Folded("rejected", None, f"every field rejected: {_decided(updated)}")
    if item["requires_second_approval"] and not _moderator_approved(updated):
        return Folded("pending", updated, f"{kind} by {who}; waiting for a moderator")
    return Folded("approved", {**updated, "fields": kept}, f"approved: {_decided(updated)}")


@dataclass(frozen=True)
class Queue:
    """What waits for review of one workflow's action: how many items, and the age in
    seconds of the oldest."""

    pending: int
    oldest_age_s: float


def review_queues(items: Iterable[ModerationItem], now: datetime) -> dict[tuple[str, str], Queue]:
    """(workflow, action) → its queue, over ``items`` (what one worker holds)."""
    counts: dict[tuple[str, str], int] = {}
    oldest: dict[tuple[str, str], datetime] = {}
    for item in items:
        key = (item["workflow_id"], item["action_id"])
        counts[key] = counts.get(key, 0) + 1
        created = item["created_at"]
        if key not in oldest or created < oldest[key]:
            oldest[key] = created
    return {
        key: Queue(count, max(0.0, (now - oldest[key]).total_seconds()))
        for key, count in counts.items()
    }


def resolved_task(item: ModerationItem) -> Task:
    """The slip with the reviewed output in place, ready to advance."""
    task = item["task"]
    last: ActionOutput = {**task["outputs"][-1], "fields": list(item["fields"])}
    return {**task, "outputs": [*task["outputs"][:-1], last]}


def reviewed_output(item: ModerationItem, kept: Sequence[FieldOutput]) -> ActionOutput:
    """The step's output once ``item`` is approved with fields ``kept``: those, plus
    the fields decided from memory before the item was made, in the output's order."""
    output = item["task"]["outputs"][-1]
    reviewed = {(f["field"], f["locale"]) for f in item["fields"]}
    decided: dict[tuple[str, str | None], FieldOutput] = {
        (f["field"], f["locale"]): {**f} for f in kept
    }
    fields: list[FieldOutput] = [
        decided[(f["field"], f["locale"])] if (f["field"], f["locale"]) in reviewed else {**f}
        for f in output["fields"]
        if (f["field"], f["locale"]) in decided or (f["field"], f["locale"]) not in reviewed
    ]
    return {**output, "fields": fields}


def matches(
    item: ModerationItem,
    *,
    run_id: str | None = None,
    workflow_id: str | None = None,
    action_id: str | None = None,
    min_confidence: float | None = None,
    max_confidence: float | None = None,
) -> bool:
    """The filter of batch decisions and of ``moderation list``."""
    if run_id and item["run_id"] != run_id:
        return False
    if workflow_id and item["workflow_id"] != workflow_id:
        return False
    if action_id and item["action_id"] != action_id:
        return False
    lowest = min((_confidence(f) for f in item["fields"]), default=1.0)
    if min_confidence is not None and lowest < min_confidence:
        return False
    return not (max_confidence is not None and lowest > max_confidence)


def _targets(
    fields: Sequence[FieldOutput], decision: ModerationDecision | DecisionSummary
) -> list[int]:
    return [
        i
        for i, f in enumerate(fields)
        if decision["field"] is None
        or (
            f["field"] == decision["field"]
            and (decision["locale"] is None or f["locale"] == decision["locale"])
        )
    ]


def _moderator_approved(item: ModerationItem) -> bool:
    return any(
        d["role"] in MODERATING_ROLES and d["decision"] in ("APPROVE", "EDIT")
        for d in item["decisions"]
    )


def _decided(item: ModerationItem) -> str:
    """Every decision on the item, for the task's history (the item itself goes away):
    ``EDIT shopping_title@de_DE by erik (editor): 'a' -> 'b'; APPROVE by erik (editor)``."""
    parts = []
    for d in item["decisions"]:
        where = (d["field"] or "") + (f"@{d['locale']}" if d["locale"] else "")
        text = f"{d['decision']}{' ' + where if where else ''} by {d['actor_id']} "
        text += f"({d['role'].lower()})"
        if d["change"]:
            text += f": {d['change']}"
        parts.append(text)
    return "; ".join(parts)


def _rejected(item: ModerationItem) -> set[int]:
    """Fields a per-field REJECT decision took out (a later EDIT puts one back)."""
    out: set[int] = set()
    for d in item["decisions"]:
        hit = set(_targets(item["fields"], d)) if d["field"] is not None else set()
        if d["decision"] == "REJECT":
            out |= hit
        elif d["decision"] == "EDIT":
            out -= hit
    return out


def _confidence(field: FieldOutput) -> float:
    value = field["confidence"]
    return 0.0 if value is None else value


def _label(field: FieldOutput) -> str:
    return field["field"] + (f"@{field['locale']}" if field["locale"] else "")


def _sampled(task_id: str, fraction: float) -> bool:
    """A stable draw: the same task is in the audit sample on every replay."""
    digest = hashlib.sha256(task_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
