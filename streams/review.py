"""The reviewer's side of moderation: reading the queue and sending decisions, for
the CLI (``catalogflow moderation``) and for scripts; no worker needed.

Two modules, two jobs, one vocabulary: *moderation* is the mechanism (the policy, the
``moderation`` topic and table, its items, decisions and agent); *review* is what a
person does with an item. The worker applies the rules in
:mod:`catalogflow.streams.moderation`; this module is what the person's tools call.

Pending items are the live keys of the compacted ``moderation`` topic (a decided item
is a tombstone), so listing needs no worker. A decision is an event on
``moderation-decisions`` keyed by the item's SKU; the moderation agent applies it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from catalogflow.streams.clock import Clock, SystemClock
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.moderation import matches
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.reader import read_latest
from catalogflow.streams.records import (
    DecisionKind,
    ModerationDecision,
    ModerationItem,
    Role,
    Value,
)
from catalogflow.streams.settings import Settings


def pending_items(
    settings: Settings, progress: Callable[[int], None] = lambda _: None, **filters: Any
) -> list[ModerationItem]:
    """Items waiting for review, oldest first, filtered like :func:`matches`."""
    items = read_latest(settings, settings.topic("moderation"), ModerationItem, progress)
    chosen = [item for item in items.values() if matches(item, **filters)]
    return sorted(chosen, key=lambda item: (item["created_at"], item["item_id"]))


def pending_item(settings: Settings, item_id: str) -> ModerationItem:
    items = read_latest(settings, settings.topic("moderation"), ModerationItem)
    if item_id not in items:
        raise CatalogflowError(
            f"no item {item_id!r} is waiting for review (decided already, or a wrong id; "
            "`catalogflow moderation list` shows the pending ones)"
        )
    return items[item_id]


def decision(
    item: ModerationItem,
    kind: DecisionKind,
    *,
    actor: str,
    role: Role = "EDITOR",
    field: str | None = None,
    locale: str | None = None,
    value: Value = None,
    feedback: str | None = None,
    clock: Clock | None = None,
) -> ModerationDecision:
    if field is not None and not any(
        f["field"] == field and (locale is None or f["locale"] == locale) for f in item["fields"]
    ):
        have = ", ".join(
            f["field"] + (f"@{f['locale']}" if f["locale"] else "") for f in item["fields"]
        )
        raise CatalogflowError(
            f"item {item['item_id']} has no field {field}{'@' + locale if locale else ''} "
            f"(it has {have})"
        )
    if kind == "EDIT" and field is None:
        raise CatalogflowError("an edit names the field it changes (--field)")
    if kind == "REGENERATE" and not (feedback or "").strip():
        raise CatalogflowError("regenerate needs feedback for the action (--feedback)")
    return {
        "decision_id": str(uuid.uuid4()),
        "item_id": item["item_id"],
        "task_id": item["task_id"],
        "sku": item["sku"],
        "decision": kind,
        "field": field,
        "locale": locale,
        "edited_value": value if kind == "EDIT" else None,
        "feedback": feedback,
        "actor": {"id": actor, "role": role},
        "decided_at": (clock or SystemClock()).now(),
        "signature": None,  # signed by the producer when it holds the key
    }


def send_decisions(settings: Settings, decisions: Iterable[ModerationDecision]) -> int:
    """Produce the decisions and wait for the broker; returns how many were sent."""
    producer = RecordProducer(settings)
    count = 0
    for record in decisions:
        producer.send("moderation-decisions", record["sku"], record)
        count += 1
    producer.flush()
    return count
