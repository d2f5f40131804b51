"""Applying workflow definitions and sending run commands, for the CLI and tests.

Versions: applying a definition whose content changed publishes version n+1 on the
compacted ``workflows`` topic; an unchanged one keeps its version. A run pins the
version it started with by carrying the definition itself, so editing a live
workflow never changes tasks already under way.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.reader import read_latest
from catalogflow.streams.records import CommandKind, WorkflowVersion, workflow_command
from catalogflow.streams.settings import Settings


def applied_versions(settings: Settings) -> dict[str, WorkflowVersion]:
    return read_latest(settings, settings.topic("workflows"), WorkflowVersion)


def apply_definition(
    settings: Settings, definition: WorkflowDefinition, source: str, applied_by: str
) -> tuple[WorkflowVersion, bool]:
    """Publish ``definition``; return its version record and whether it is new."""
    current = applied_versions(settings).get(definition.id)
    content_hash = definition.content_hash()
    if current is not None and current["content_hash"] == content_hash:
        return current, False
    record: WorkflowVersion = {
        "workflow_id": definition.id,
        "version": (current["version"] + 1) if current else 1,
        "content_hash": content_hash,
        "definition": json.dumps(definition.to_dict(), sort_keys=True),
        "source": source,
        "applied_by": applied_by,
        "applied_at": datetime.now(UTC),
    }
    producer = RecordProducer(settings)
    producer.send("workflows", definition.id, record)
    producer.flush()
    return record, True


def start_run(
    settings: Settings,
    workflow_id: str,
    issued_by: str,
    budget: float | None = None,
    *,
    command_id: str | None = None,
) -> str:
    """Start a run of the latest applied version; return the new run id. With a
    ``budget``, the run pauses itself once its model cost reaches it.

    ``command_id`` (here and below): the caller's id for the command, which the API
    answers with; by default a new one."""
    version = applied_versions(settings).get(workflow_id)
    if version is None:
        raise CatalogflowError(
            f"workflow {workflow_id!r} has not been applied; run `catalogflow workflow apply FILE`"
        )
    run_id = f"{workflow_id}.v{version['version']}.{uuid.uuid4().hex[:8]}"
    _send(
        settings,
        workflow_id,
        "RUN",
        run_id,
        issued_by,
        {"definition": version["definition"], "version": str(version["version"])}
        | ({"budget": str(budget)} if budget is not None else {}),
        command_id,
    )
    return run_id


def control_run(
    settings: Settings,
    workflow_id: str,
    run_id: str,
    command: CommandKind,
    issued_by: str,
    *,
    command_id: str | None = None,
) -> None:
    """PAUSE, RESUME or STOP a run."""
    _send(settings, workflow_id, command, run_id, issued_by, {}, command_id)


def retry_failed(
    settings: Settings,
    workflow_id: str,
    run_id: str,
    issued_by: str,
    category: str | None = None,
    action: str | None = None,
    *,
    command_id: str | None = None,
) -> None:
    """Run the run's Error tasks again from the step that failed, a failed sync with
    the requests that failed (optionally only those of one failure category, and of
    one action id; ``sync`` names the write-back)."""
    arguments = {"category": category} if category else {}
    arguments |= {"action": action} if action else {}
    _send(settings, workflow_id, "RETRY_FAILED", run_id, issued_by, arguments, command_id)


def _send(
    settings: Settings,
    workflow_id: str,
    command: CommandKind,
    run_id: str,
    issued_by: str,
    arguments: dict[str, str],
    command_id: str | None = None,
) -> None:
    producer = RecordProducer(settings)  # signs when the settings hold the key
    producer.send(
        "workflow-commands",
        workflow_id,
        workflow_command(
            command_id=command_id or uuid.uuid4().hex,
            workflow_id=workflow_id,
            command=command,
            run_id=run_id,
            issued_by=issued_by,
            issued_at=datetime.now(UTC),
            arguments=arguments,
        ),
    )
    producer.flush()
