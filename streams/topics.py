"""Every topic catalogflow owns, declared once: its name, contract and retention.

Agents and commands look topics up here; nothing else spells a topic name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from catalogflow.streams.settings import Settings
from catalogflow.streams.tables import KeyScheme

TopicName = Literal[
    "product-changes",
    "workflows",
    "partition-commands",
    "run-progress",
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
            "workflows",
            "WorkflowVersion",
            True,
            "applied workflow definitions, latest version per workflow id; key = workflow id",
        ),
        TopicSpec(
            "partition-commands",
            "WorkflowCommand",
            False,
            "a command copied to every partition (scan, pause, resume, stop); no key",
        ),
        TopicSpec(
            "run-progress",
            "RunProgress",
            False,
            "task transitions and scan results re-keyed by run id; key = run id",
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

TASK_SCHEMA = "Task"


def task_topic(action_type: str) -> str:
    """The topic an action type consumes (before the prefix): ``tasks.<type>``."""
    return f"tasks.{action_type}"


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: str
    key_scheme: KeyScheme
    doc: str
    #: A topic of TOPICS that is the table's changelog, when the table *is* that topic
    #: (``moderation``); else faust's ``<app_id>-<table>-changelog``.
    changelog: TopicName | None = None


#: Faust tables, changelogged to compacted ``<app_id>-<table>-changelog`` topics.
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("products", "ProductSnapshot", "sku", "latest snapshot per product"),
        TableSpec("task-states", "TaskState", "task", "status and history per task"),
        TableSpec("runs", "RunState", "run", "totals per workflow run"),
        TableSpec(
            "run-controls",
            "WorkflowCommand",
            "copy",
            "last run/pause/resume/stop per run, one copy per partition",
        ),
        TableSpec("parked", "Task", "task", "tasks held while their run is paused"),
        TableSpec("failed", "Task", "task", "slips of tasks that ended in Error, for retry"),
        TableSpec(
            "llm-cache", "LlmResult", "task", "model answers for reuse, per product and input"
        ),
        TableSpec(
            "source-hashes",
            "SourceHash",
            "task",
            "fields last processed per product and continuous workflow",
        ),
        TableSpec(
            "moderation",
            "ModerationItem",
            "task",
            "outputs waiting for review, keyed by item id (task id, step, attempt)",
            changelog="moderation",
        ),
        TableSpec(
            "remembered-decisions",
            "RememberedDecision",
            "task",
            "a person's final decision per product, action, field, locale, input and value",
        ),
        TableSpec(
            "review-feedback",
            "ModerationDecision",
            "task",
            "the reviewer's regenerate request per task, read by the action on its next run",
        ),
        TableSpec(
            "sync-ledger",
            "SyncLedgerEntry",
            "task",
            "hash of the last value written per product, target, scope and field",
        ),
        TableSpec(
            "sync-pending",
            "SyncTaskState",
            "task",
            "sync requests per task and their outcomes so far",
        ),
        TableSpec(
            "sync-failed",
            "SyncTaskState",
            "task",
            "syncs that ended in Error, with every request's outcome, for retry",
        ),
        TableSpec(
            "sync-failed-requests",
            "SyncRequest",
            "task",
            "the failed requests of those syncs, keyed by request id, sent again on retry",
        ),
        TableSpec(
            "feed-content",
            "SyncRequest",
            "sku",
            "approved values per product for the Merchant Center feed",
        ),
    )
}


def changelog_topic(settings: Settings, table: str) -> str:
    """The full name of the topic ``table`` is changelogged to (commands read a table
    there without a worker): its own topic (``moderation``), or faust's
    ``<app_id>-<table>-changelog``, spelled nowhere else."""
    spec = TABLES[table]
    if spec.changelog:
        return settings.topic(spec.changelog)
    return f"{settings.app_id}-{table}-changelog"
