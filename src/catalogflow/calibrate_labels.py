"""Labels for ``catalogflow calibrate`` from the read model: every value a person
decided on, approved as is (correct) or not (wrong).

The item's record (``moderation_items.record``) holds the output as the action made
it: the confidence there is the model's. ``task_outputs`` cannot serve: an edit
replaces the value there and sets its confidence to 1.0.

Which decision stands is the moderation agent's rule
(:func:`catalogflow.streams.moderation.apply_decision`), so "the latest decision per
value" means what the agent did: a per-field reject stands through a later whole-item
approval, decisions after the item was resolved change nothing. The order matters and
``decided_at`` keeps milliseconds only: a script's reject and approval often tie. The
record is the item's last live version, which the agent wrote after each decision that
left it pending, so it holds every decision but the resolving one, in the agent's
order; the fold goes on from it with the decisions it does not hold yet (by time; on a
tie, a decision on one field before a decision on the whole item, the order a person
works in).

Per reviewed value: kept with its value = correct; edited to another value, rejected
(the field, or the whole item) or sent back to regenerate = wrong. A whole-item reject
and a regenerate label every value of the item wrong, though a person may have objected
to one of them; that can only make a threshold stricter. Items still waiting (no
decisions, or a first approval waiting for a moderator) give no labels; values approved
without review never made an item. Items of the audit sample are reviewed items like any other, so
auto-approved values keep giving labels. The sync approval (``sync.mode:
after_approval``) is a last look at everything to be written, not an action's value:
left out.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from catalogflow.calibrate_fit import Label
from catalogflow.readmodel import tables as t
from catalogflow.readmodel.views import NotFound
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.moderation import Folded, apply_decision
from catalogflow.streams.records import FieldOutput, ModerationDecision, ModerationItem
from catalogflow.streams.sync import is_sync_approval


@dataclass(frozen=True)
class Reviewed:
    """What the read model holds of one workflow's reviews."""

    labels: list[Label]
    items: int  # review items of the workflow (since the version asked for)
    resolved: int  # of them, resolved by their decisions
    audited: int  # of those, items of the audit sample
    versions: tuple[int, ...]  # workflow versions the resolved items ran with


@dataclass(frozen=True)
class Applied:
    """The workflow's latest applied version, as the read model keeps it."""

    version: int
    document: dict[str, Any]  # the definition's ``to_dict()``, as applied
    definition: WorkflowDefinition


def applied(engine: sa.Engine, workflow_id: str) -> Applied:
    v = t.workflow_versions.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(v.version, v.definition)
            .where(v.workflow_id == workflow_id)
            .order_by(v.version.desc())
            .limit(1)
        ).first()
    if row is None:
        raise NotFound(f"no workflow {workflow_id!r}")
    document = json.loads(row.definition)
    source = f"{workflow_id} version {row.version}"
    return Applied(row.version, document, WorkflowDefinition.from_dict(document, source))


def reviewed(engine: sa.Engine, workflow_id: str, since_version: int = 0) -> Reviewed:
    """The labels of every resolved review item of ``workflow_id`` whose run used
    version ``since_version`` or later."""
    m, d = t.moderation_items.c, t.decisions.c
    with engine.connect() as conn:
        records = conn.execute(
            sa.select(m.record).where(m.workflow_id == workflow_id).order_by(m.item_id)
        ).all()
        rows = conn.execute(
            sa.select(t.decisions)
            .join(t.moderation_items, d.item_id == m.item_id)
            .where(m.workflow_id == workflow_id)
            .order_by(d.item_id)
        ).all()
    decisions: dict[str, list[ModerationDecision]] = defaultdict(list)
    for row in rows:
        decisions[row.item_id].append(_decision(row))
    schemas = SchemaStore.shipped()
    labels: list[Label] = []
    items = resolved = audited = 0
    versions: set[int] = set()
    for (record,) in records:
        item = schemas.decode(record, expected=ModerationItem)
        if item["task"]["workflow_version"] < since_version:
            continue
        if is_sync_approval(item["task"]["outputs"][-1]):
            continue
        items += 1
        found = item_labels(item, decisions.get(item["item_id"], []))
        if found is None:
            continue
        resolved += 1
        audited += item["review_reason"].startswith("audit sample")
        versions.add(item["task"]["workflow_version"])
        labels.extend(found)
    return Reviewed(labels, items, resolved, audited, tuple(sorted(versions)))


def item_labels(
    item: ModerationItem, decisions: Sequence[ModerationDecision]
) -> list[Label] | None:
    """One label per reviewed value of ``item`` (its last live version) once
    ``decisions`` (all the item's, in any order) resolve it; None while they do not."""
    produced = {(f["field"], f["locale"]): f for f in item["task"]["outputs"][-1]["fields"]}
    original = [
        produced[(f["field"], f["locale"])]
        for f in item["fields"]
        if (f["field"], f["locale"]) in produced
    ]
    state = item
    for decision in _not_yet_folded(item, decisions):
        folded = apply_decision(state, decision)
        if folded.outcome in ("pending", "ignored") and folded.item is not None:
            state = folded.item
            continue
        return [_label(item, f, _correct(f, folded)) for f in original]
    return None


def _not_yet_folded(
    item: ModerationItem, decisions: Sequence[ModerationDecision]
) -> list[ModerationDecision]:
    """``decisions`` less those the item already holds, in the order to fold them."""
    held = Counter(
        (d["decision"], d["actor_id"], d["role"], _utc(d["at"]), d["field"], d["locale"])
        for d in item["decisions"]
    )
    rest = []
    for d in sorted(
        decisions, key=lambda d: (_utc(d["decided_at"]), d["field"] is None, d["decision_id"])
    ):
        key = (
            d["decision"],
            d["actor"]["id"],
            d["actor"]["role"],
            _utc(d["decided_at"]),
            d["field"],
            d["locale"],
        )
        if held[key]:
            held[key] -= 1
        else:
            rest.append(d)
    return rest


def _utc(value: datetime) -> datetime:
    """SQLite gives timestamps back without their zone; the projector writes UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _correct(value: FieldOutput, folded: Folded) -> bool:
    if folded.outcome != "approved" or folded.item is None:
        return False  # rejected, or sent back to regenerate
    kept = {(f["field"], f["locale"]): f["value"] for f in folded.item["fields"]}
    where = (value["field"], value["locale"])
    return where in kept and kept[where] == value["value"]


def _label(item: ModerationItem, value: FieldOutput, correct: bool) -> Label:
    name = value["field"] + (f"@{value['locale']}" if value["locale"] else "")
    return Label(
        action_id=item["action_id"],
        field=name,
        item_id=item["item_id"],
        sku=item["sku"],
        confidence=value["confidence"],
        correct=correct,
        flagged=not value["approved"],
    )


def _decision(row: sa.Row[Any]) -> ModerationDecision:
    return {
        "decision_id": row.decision_id,
        "item_id": row.item_id,
        "task_id": row.task_id,
        "sku": row.sku,
        "decision": row.decision,
        "field": row.field,
        "locale": row.locale,
        "edited_value": row.edited_value,
        "feedback": row.feedback,
        "actor": {"id": row.actor_id, "role": row.role},
        "decided_at": row.decided_at,
        "signature": None,
    }
