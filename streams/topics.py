"""Every topic catalogflow owns, declared once: its name, contract and retention.

Agents and commands look topics up here; nothing else spells a topic name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TopicName = Literal[
    "product-changes",
    "workflow-commands",
    "task-events",
    "moderation",
    "moderation-decisions",
    "sync-requests",
    "sync-results",
    "dead-letters",
]


@dataclass(frozen=True)
class TopicSpec:
    name: TopicName
    schema: str
    compacted: bool
    doc: str


TOPICS: dict[TopicName, TopicSpec] = {
    spec.name: spec
    for spec in (
        TopicSpec(
            "product-changes",
            "ProductChanged",
            False,
            "product change events from a PIM, an importer or the Magento poller; key = SKU",
        ),
        TopicSpec(
            "workflow-commands",
            "WorkflowCommand",
            False,
            "run, pause, resume, stop and retry commands; key = workflow id",
        ),
        TopicSpec("task-events", "TaskEvent", False, "every task status transition; key = SKU"),
        TopicSpec(
            "moderation",
            "ModerationItem",
            True,
            "outputs waiting for review, tombstoned when decided; key = item id",
        ),
        TopicSpec(
            "moderation-decisions",
            "ModerationDecision",
            False,
            "approve / reject / edit / regenerate decisions; key = SKU",
        ),
        TopicSpec("sync-requests", "SyncRequest", False, "approved output to write; key = SKU"),
        TopicSpec("sync-results", "SyncResult", False, "what each write did; key = SKU"),
        TopicSpec(
            "dead-letters",
            "DeadLetter",
            False,
            "messages that could not be processed, with coordinates, raw bytes and reason",
        ),
    )
}

#: Faust tables, changelogged by faust itself to ``<app_id>-<table>-changelog``.
PRODUCTS_TABLE = "products"
