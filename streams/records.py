"""The shape of every record on every topic and in every table, in one module.

One ``TypedDict`` per Avro schema in ``schemas/*.avsc`` (and one per nested record
type), named as the schema names it; ``tests/unit/test_records.py`` checks each
against its ``.avsc`` file, so a field added to a schema and not here fails a test.
Decoded records always carry every field (the codec fills defaults), so the types
are total and a nullable union is ``X | None``. Timestamps (``timestamp-millis``)
decode as aware UTC ``datetime`` objects, which is how they are typed here.

Records built in more than one place have their constructor here too, so their
defaults are spelled once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal, TypedDict

#: An attribute value: null = cleared, a scalar as typed, a list = multiselect codes.
Value = str | bool | int | float | list[str] | None

TaskStatus = Literal[
    "WAITING",
    "RUNNING",
    "AWAITING_MODERATION",
    "SYNCED",
    "COMPLETED",
    "ERROR",
    "PAUSED",
    "SKIPPED",
    "REJECTED",
]
FailureCategory = Literal[
    "INCOMPLETE_SOURCE_DATA",
    "INVALID_PROMPT",
    "PROVIDER_LIMITATION",
    "INVALID_OUTPUT",
    "SYNC_ISSUE",
]
DecisionKind = Literal["APPROVE", "REJECT", "EDIT", "REGENERATE"]
RememberedKind = Literal["APPROVE", "REJECT", "EDIT"]
Role = Literal["EDITOR", "MODERATOR", "ADMIN"]
ChangeType = Literal["CREATED", "UPDATED", "DELETED"]
AuthorKind = Literal["PERSON", "SYSTEM", "IMPORT", "SUPPLIER", "CATALOGFLOW"]
RunProgressKind = Literal["STARTED", "SCANNED", "TRANSITION", "CONTROL"]
SyncStatus = Literal["SYNCED", "CONFLICT", "ERROR", "UNCHANGED"]
SyncErrorCategory = Literal[
    "MISSING_REQUIRED_ATTRIBUTE",
    "INVALID_OPTION_VALUE",
    "DUPLICATE_URL_KEY",
    "AUTH",
    "CONNECTION",
    "OTHER",
]
CommandKind = Literal["RUN", "PAUSE", "RESUME", "STOP", "RETRY_FAILED"]


# --- the task slip and what actions produce ---------------------------------------


class FieldOutput(TypedDict):
    field: str
    locale: str | None
    value: Value
    reasoning: str | None
    confidence: float | None
    evidence: str | None
    approved: bool


class ActionOutput(TypedDict):
    action_id: str
    action_type: str
    fields: list[FieldOutput]
    model: str | None
    prompt_version: str | None
    input_tokens: int
    output_tokens: int
    cost: float
    skipped: str | None


class Origin(TypedDict):
    topic: str
    partition: int
    offset: int


class Task(TypedDict):
    task_id: str
    run_id: str
    workflow_id: str
    workflow_version: int
    sku: str
    step_index: int
    steps: list[str]
    definition: str
    input_hash: str
    created_at: datetime
    attempt: int
    outputs: list[ActionOutput]
    origin: Origin | None
    history: list[str]


class TaskEvent(TypedDict):
    event_id: str
    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    action_id: str | None
    step_index: int
    status: TaskStatus
    reason: str | None
    failure_category: FailureCategory | None
    at: datetime
    details: dict[str, str]
    outputs: list[ActionOutput]
    step_output: ActionOutput | None


class Transition(TypedDict):
    status: str
    action_id: str | None
    reason: str | None
    at: datetime


class TaskState(TypedDict):
    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    action_id: str | None
    step_index: int
    status: TaskStatus
    reason: str | None
    failure_category: FailureCategory | None
    at: datetime
    outputs: list[ActionOutput]
    history: list[Transition]
    attempt: int
    source_partition: int
    source_offset: int


# --- runs and commands ------------------------------------------------------------


class WorkflowCommand(TypedDict):
    command_id: str
    workflow_id: str
    command: CommandKind
    run_id: str | None
    issued_by: str
    issued_at: datetime
    arguments: dict[str, str]
    signature: str | None


class WorkflowVersion(TypedDict):
    workflow_id: str
    version: int
    content_hash: str
    definition: str
    source: str
    applied_by: str
    applied_at: datetime


class RunTransition(TypedDict):
    task_id: str
    action_id: str | None
    from_action_id: str | None
    from_status: str | None
    to_status: str
    at: datetime
    cost: float
    input_tokens: int
    output_tokens: int
    source_partition: int
    source_offset: int


class RunProgress(TypedDict):
    run_id: str
    workflow_id: str
    kind: RunProgressKind
    partition: int
    partitions: int
    tasks_created: int
    task_id: str | None
    action_id: str | None
    from_action_id: str | None
    from_status: str | None
    to_status: str | None
    workflow_version: int
    mode: str
    at: datetime
    cost: float
    input_tokens: int
    output_tokens: int
    budget: float | None
    source_partition: int
    source_offset: int
    transitions: list[RunTransition]


class RunState(TypedDict):
    run_id: str
    workflow_id: str
    workflow_version: int
    mode: str
    status: str
    partitions: int
    partitions_scanned: int
    tasks_created: int
    counts: dict[str, int]
    action_counts: dict[str, int]
    started_at: datetime
    finished_at: datetime | None
    cost: float
    input_tokens: int
    output_tokens: int
    budget: float | None
    budget_reached: bool
    applied_offset: int
    scanned: dict[str, int]
    applied_sources: dict[str, int]


class SourceHash(TypedDict):
    sku: str
    workflow_id: str
    fields_hash: str
    task_id: str
    at: datetime


# --- products ----------------------------------------------------------------------


class Author(TypedDict):
    kind: AuthorKind
    id: str
    name: str | None


class AttributeValue(TypedDict):
    attribute: str
    locale: str | None
    scope: str | None
    value: Value


class ProductChanged(TypedDict):
    event_id: str
    sku: str
    change_type: ChangeType
    author: Author
    source: str
    source_timestamp: datetime
    values: list[AttributeValue]
    categories: list[str] | None
    supplier: str | None
    status: str | None
    family: str | None


class SnapshotValue(TypedDict):
    attribute: str
    locale: str | None
    scope: str | None
    value: Value
    updated_at: datetime
    author_kind: str


class ProductSnapshot(TypedDict):
    sku: str
    deleted: bool
    values: list[SnapshotValue]
    categories: list[str]
    supplier: str | None
    status: str | None
    family: str | None
    version: int
    last_event_id: str
    updated_at: datetime


# --- moderation --------------------------------------------------------------------


class Actor(TypedDict):
    id: str
    role: Role


class ModerationDecision(TypedDict):
    decision_id: str
    item_id: str
    task_id: str
    sku: str
    decision: DecisionKind
    field: str | None
    locale: str | None
    edited_value: Value
    feedback: str | None
    actor: Actor
    decided_at: datetime
    signature: str | None


class DecisionSummary(TypedDict):
    decision: DecisionKind
    actor_id: str
    role: Role
    at: datetime
    field: str | None
    locale: str | None
    change: str | None


class ModerationItem(TypedDict):
    item_id: str
    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    action_id: str
    task: Task
    source_values: list[AttributeValue]
    fields: list[FieldOutput]
    review_reason: str
    requires_second_approval: bool
    decisions: list[DecisionSummary]
    created_at: datetime


class RememberedDecision(TypedDict):
    sku: str
    action_id: str
    field: str
    locale: str | None
    input_hash: str
    value_hash: str
    decision: RememberedKind
    edited_value: Value
    actor_id: str
    role: Role
    decided_at: datetime
    run_id: str
    task_id: str
    item_id: str


# --- sync --------------------------------------------------------------------------


class SyncField(TypedDict):
    attribute: str
    value: Value
    read_value: Value
    value_hash: str


class SyncRequest(TypedDict):
    request_id: str
    task_id: str
    run_id: str
    sku: str
    target: str
    store_scope: str
    fields: list[SyncField]
    requested_at: datetime


class SyncFieldResult(TypedDict):
    attribute: str
    status: SyncStatus
    message: str | None


class SyncResult(TypedDict):
    request_id: str
    task_id: str
    sku: str
    target: str
    store_scope: str
    status: SyncStatus
    fields: list[SyncFieldResult]
    error_category: SyncErrorCategory | None
    message: str | None
    at: datetime


class SyncTaskState(TypedDict):
    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    steps: list[str]
    step_index: int
    attempt: int
    request_ids: list[str]
    outcomes: dict[str, str]


class SyncLedgerEntry(TypedDict):
    sku: str
    target: str
    store_scope: str
    attribute: str
    value_hash: str
    request_id: str
    at: datetime


# --- everything else ---------------------------------------------------------------


class TokenLogprob(TypedDict):
    token: str
    logprob: float


class LlmResult(TypedDict):
    key: str
    model: str
    prompt_version: str
    content: str
    token_logprobs: list[TokenLogprob] | None  # version 1 rows only; now written None
    logprob_tokens: list[str]
    logprob_values: list[float]
    input_tokens: int
    output_tokens: int
    cost: float
    created_at: datetime


class DeadLetter(TypedDict):
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str
    agent: str
    failed_at: datetime


# --- constructors of records built in several places ------------------------------


def run_progress(
    *,
    run_id: str,
    workflow_id: str,
    kind: RunProgressKind,
    at: datetime,
    partition: int = -1,
    partitions: int = 0,
    tasks_created: int = 0,
    task_id: str | None = None,
    action_id: str | None = None,
    from_action_id: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    workflow_version: int = 0,
    mode: str = "",
    cost: float = 0.0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    budget: float | None = None,
    source_partition: int = -1,
    source_offset: int = -1,
    transitions: list[RunTransition] | None = None,
) -> RunProgress:
    """A run-progress event; what a kind does not use keeps the schema's default."""
    return {
        "run_id": run_id,
        "workflow_id": workflow_id,
        "kind": kind,
        "partition": partition,
        "partitions": partitions,
        "tasks_created": tasks_created,
        "task_id": task_id,
        "action_id": action_id,
        "from_action_id": from_action_id,
        "from_status": from_status,
        "to_status": to_status,
        "workflow_version": workflow_version,
        "mode": mode,
        "at": at,
        "cost": cost,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "budget": budget,
        "source_partition": source_partition,
        "source_offset": source_offset,
        "transitions": transitions or [],
    }


def workflow_command(
    *,
    command_id: str,
    workflow_id: str,
    command: CommandKind,
    run_id: str | None,
    issued_by: str,
    issued_at: datetime,
    arguments: Mapping[str, str] | None = None,
) -> WorkflowCommand:
    """Unsigned: the producer signs it (streams/signing.py) when it holds the key."""
    return {
        "command_id": command_id,
        "workflow_id": workflow_id,
        "command": command,
        "run_id": run_id,
        "issued_by": issued_by,
        "issued_at": issued_at,
        "arguments": dict(arguments or {}),
        "signature": None,
    }


def sync_result(
    request: SyncRequest,
    status: SyncStatus,
    *,
    at: datetime,
    fields: Sequence[SyncFieldResult] = (),
    error_category: SyncErrorCategory | None = None,
    message: str | None = None,
) -> SyncResult:
    """The result of ``request``: its coordinates, the outcome and per-field results."""
    return {
        "request_id": request["request_id"],
        "task_id": request["task_id"],
        "sku": request["sku"],
        "target": request["target"],
        "store_scope": request["store_scope"],
        "status": status,
        "fields": list(fields),
        "error_category": error_category,
        "message": message,
        "at": at,
    }


def field_results(
    request: SyncRequest, status: SyncStatus, message: str | None = None
) -> list[SyncFieldResult]:
    """The same outcome for every field of ``request``."""
    return [
        {"attribute": f["attribute"], "status": status, "message": message}
        for f in request["fields"]
    ]
