"""Remembered decisions, as pure functions over records.

A person's final decision on a value (approve, reject, edit) is remembered by SKU,
action, field, locale, the hash of what the action read and the hash of the value
the action produced (:func:`memory_key`). When a later run produces the same value
from the same input, :func:`recall` applies that decision instead of asking again:
approve → approved, reject → the field is dropped (never synced), edit → the
person's value. A changed input or a different value finds no row, so it asks again.

Conservative rules, on purpose:

* only the effective decision of a *resolved* item is remembered
  (:func:`remembered`): a pending first approval that waits for a moderator, a
  regenerate request or a decision later overridden on the same field is not;
* a value a check flagged is never approved from memory, and a person's approval
  of a flagged value is not remembered either: the check fails again on every run
  and a person looks again. A remembered reject or edit of it does apply;
* the sync approval (``sync.mode: after_approval``) is not remembered: it is a
  last look at everything about to be written, not a decision on one action's value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from catalogflow.streams.records import (
    ActionOutput,
    AttributeValue,
    DecisionSummary,
    FieldOutput,
    ModerationDecision,
    ModerationItem,
    RememberedDecision,
    RememberedKind,
    Value,
)
from catalogflow.streams.sync import value_hash

#: Where a decision applies in an item: the field and its locale.
Where = tuple[str, str | None]


def read_hash(
    source_values: Sequence[AttributeValue], previous_outputs: Sequence[ActionOutput]
) -> str:
    """sha256 (hex) of what an action read: the product values of its ``reads`` (as
    the item's ``source_values``) and the values of the steps before it (an action
    may read ``outputs.<field>``). Reasoning and confidence are left out: they do not
    change what the action saw."""
    source = [[v["attribute"], v["locale"], v["scope"], v["value"]] for v in source_values]
    earlier = [
        [o["action_id"], f["field"], f["locale"], f["value"]]
        for o in previous_outputs
        for f in o["fields"]
    ]
    text = json.dumps([source, earlier], sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def memory_key(
    sku: str, action_id: str, field_name: str, locale: str | None, input_hash: str, value: Value
) -> str:
    """``<sku>@<digest>``: the SKU first, so the row lives on the product's partition
    (key scheme ``task``); the rest is digested so no field name can break the key."""
    parts = [action_id, field_name, locale, input_hash, value_hash(value)]
    digest = hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()[:40]
    return f"{sku}@remembered:{digest}"


def describe(row: RememberedDecision) -> str:
    """``shopping_title@de_DE rejected by rita (editor) at 2025-03-01 09:30 UTC in run R``."""
    where = row["field"] + (f"@{row['locale']}" if row["locale"] else "")
    verb = {"APPROVE": "approved", "REJECT": "rejected", "EDIT": "edited"}[row["decision"]]
    at = row["decided_at"].strftime("%Y-%m-%d %H:%M:%S UTC")
    who = f"{row['actor_id']} ({row['role'].lower()})"
    change = f" to {row['edited_value']!r}" if row["decision"] == "EDIT" else ""
    return f"{where} {verb}{change} by {who} at {at} in run {row['run_id']}"


@dataclass(frozen=True)
class Recalled:
    """An action's output fields after the remembered decisions were applied."""

    fields: list[FieldOutput]  # every field kept (remembered rejects dropped), in order
    undecided: list[FieldOutput]  # of those, the ones no remembered decision covered
    notes: list[str] = field(default_factory=list)  # one per decision applied

    @property
    def note(self) -> str | None:
        """For the task's history: which earlier decisions were applied."""
        return "remembered decisions applied: " + "; ".join(self.notes) if self.notes else None


def recall(
    fields: Sequence[FieldOutput],
    lookup: Callable[[str], RememberedDecision | None],
    *,
    sku: str,
    action_id: str,
    input_hash: str,
) -> Recalled:
    """Apply the remembered decisions to ``fields`` (an action's fresh output)."""
    kept: list[FieldOutput] = []
    undecided: list[FieldOutput] = []
    notes: list[str] = []
    for produced in fields:
        key = memory_key(
            sku, action_id, produced["field"], produced["locale"], input_hash, produced["value"]
        )
        row = lookup(key)
        if row is None or (row["decision"] == "APPROVE" and not produced["approved"]):
            kept.append({**produced})
            undecided.append({**produced})
            continue
        notes.append(describe(row))
        if row["decision"] == "REJECT":
            continue
        if row["decision"] == "APPROVE":
            kept.append({**produced, "approved": True})
            continue
        who = f"{row['actor_id']} ({row['role'].lower()})"
        kept.append(
            {
                **produced,
                "value": row["edited_value"],
                "approved": True,
                "confidence": 1.0,
                "evidence": None,
                "reasoning": (
                    f"Human-authored by {who} in run {row['run_id']}, remembered; "
                    f"the model proposed {produced['value']!r} again."
                ),
            }
        )
    return Recalled(kept, undecided, notes)


def remembered(
    item: ModerationItem,
    decision: ModerationDecision,
    outcome: str,
    final_fields: Sequence[FieldOutput] = (),
) -> dict[str, RememberedDecision]:
    """The rows to remember when ``decision`` resolved ``item`` with ``outcome``
    (``approved`` or ``rejected``), by :func:`memory_key`; ``final_fields`` are the
    approved item's fields, whose values hold the edits. Nothing for other outcomes,
    for a sync approval, or for approvals of flagged values (see the module doc)."""
    task = item["task"]
    if outcome not in ("approved", "rejected") or task["step_index"] >= len(task["steps"]):
        return {}
    proposed = {(f["field"], f["locale"]): f for f in task["outputs"][-1]["fields"]}
    final = {(f["field"], f["locale"]): f for f in final_fields}
    input_hash = read_hash(item["source_values"], task["outputs"][:-1])
    rows: dict[str, RememberedDecision] = {}
    for (name, locale), (kind, by) in _effective(item, decision).items():
        original = proposed.get((name, locale))
        if original is None or (kind == "APPROVE" and not original["approved"]):
            continue
        decided = final.get((name, locale))
        edited = decided["value"] if kind == "EDIT" and decided is not None else None
        key = memory_key(
            item["sku"], item["action_id"], name, locale, input_hash, original["value"]
        )
        rows[key] = {
            "sku": item["sku"],
            "action_id": item["action_id"],
            "field": name,
            "locale": locale,
            "input_hash": input_hash,
            "value_hash": value_hash(original["value"]),
            "decision": kind,
            "edited_value": edited,
            "actor_id": by["actor_id"],
            "role": by["role"],
            "decided_at": by["at"],
            "run_id": item["run_id"],
            "task_id": item["task_id"],
            "item_id": item["item_id"],
        }
    return rows


def _effective(
    item: ModerationItem, decision: ModerationDecision
) -> dict[Where, tuple[RememberedKind, DecisionSummary]]:
    """The decision that stands per field of ``item``, as :func:`apply_decision` folds
    them: a reject or an edit replaces what came before, an approval does not undo
    either (it confirms an edit); a whole-item reject rejects every field."""
    last: DecisionSummary = {
        "decision": decision["decision"],
        "actor_id": decision["actor"]["id"],
        "role": decision["actor"]["role"],
        "at": decision["decided_at"],
        "field": decision["field"],
        "locale": decision["locale"],
        "change": None,
    }
    fields = item["fields"]
    state: dict[Where, tuple[RememberedKind, DecisionSummary]] = {}
    for d in [*item["decisions"], last]:
        hits = [
            (f["field"], f["locale"])
            for f in fields
            if d["field"] is None
            or (f["field"] == d["field"] and (d["locale"] is None or f["locale"] == d["locale"]))
        ]
        for where in hits:
            kind = d["decision"]
            if kind == "REJECT" or kind == "EDIT":
                state[where] = (kind, d)
            elif kind == "APPROVE" and state.get(where, ("APPROVE",))[0] == "APPROVE":
                state[where] = ("APPROVE", d)
    return state
