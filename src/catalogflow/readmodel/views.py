"""What the read side answers, in one vocabulary for the API, the CLI and the console.

``ReadSide`` is the seam: ``queries.ReadModelQueries`` answers from the read model's
database, ``catalogflow.apiclient.ApiReadSide`` from a running API (which serves the
same models as JSON), so a CLI command is written once against either.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from catalogflow.streams.errors import CatalogflowError

#: The most rows one page may hold; a bigger ``limit`` is a 400, not a slow query.
MAX_PAGE = 1000
DEFAULT_PAGE = 100


class NotFound(CatalogflowError):
    """An id the read model does not know (a 404 at the API)."""


class BadQuery(CatalogflowError):
    """A filter, cursor or page size that cannot be served (a 400 at the API)."""


class View(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionRef(View):
    id: str
    type: str


class WorkflowSummary(View):
    workflow_id: str
    name: str
    mode: str
    latest_version: int
    actions: list[ActionRef]
    applied_by: str
    applied_at: datetime
    last_run_id: str | None = None
    last_run_status: str | None = None
    last_run_at: datetime | None = None


class WorkflowVersionView(View):
    workflow_id: str
    version: int
    content_hash: str
    definition: str
    source: str
    applied_by: str
    applied_at: datetime


class WorkflowDetail(View):
    workflow: WorkflowSummary
    versions: list[WorkflowVersionView]  # newest first


class ActionTotals(View):
    action_id: str  # "-" for tasks that have not reached an action
    counts: dict[str, int]  # status -> tasks now at this action in that status


class RunSummary(View):
    run_id: str
    workflow_id: str
    workflow_version: int
    mode: str
    status: str
    partitions: int  # a one-time run's task count is final once every partition scanned
    partitions_scanned: int
    tasks_created: int
    counts: dict[str, int]  # status -> tasks
    actions: list[ActionTotals]  # in chain order
    started_at: datetime
    finished_at: datetime | None
    cost: float
    input_tokens: int
    output_tokens: int
    budget: float | None
    budget_reached: bool


class FieldResult(View):
    action_id: str
    attempt: int
    field: str
    locale: str | None
    value: Any
    reasoning: str | None
    confidence: float | None
    evidence: str | None
    approved: bool
    model: str | None
    prompt_version: str | None


class TaskResult(View):
    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    action_id: str | None
    step_index: int
    status: str
    reason: str | None
    failure_category: str | None
    attempt: int
    at: datetime
    min_confidence: float | None
    moderation_state: str | None
    sync_status: str | None
    cost: float
    input_tokens: int
    output_tokens: int
    fields: list[FieldResult]


ModerationState = Literal["PENDING", "APPROVED", "REJECTED", "EDITED"]


class TaskFilter(View):
    """The Results filters; every one optional, all of them ANDed."""

    action: str | None = None  # tasks with an output of this action (its fields only)
    status: list[str] = Field(default_factory=list)
    failure_category: str | None = None
    confidence_below: float | None = None  # some field of the action below this
    moderation_state: ModerationState | None = None
    sync_status: str | None = None
    q: str | None = None  # SKU or text search, case-insensitive substring


class DecisionView(View):
    decision_id: str
    item_id: str
    task_id: str
    sku: str
    decision: str
    field: str | None
    locale: str | None
    edited_value: Any
    feedback: str | None
    actor_id: str
    role: str
    decided_at: datetime


class SourceValue(View):
    attribute: str
    locale: str | None
    scope: str | None
    value: Any


class ModerationQueueItem(View):
    item_id: str
    task_id: str
    run_id: str
    workflow_id: str
    sku: str
    action_id: str
    review_reason: str
    requires_second_approval: bool
    risk: float
    created_at: datetime
    source_values: list[SourceValue]
    fields: list[FieldResult]
    decisions: list[DecisionView]


class SyncFieldView(View):
    attribute: str
    status: str
    message: str | None


class SyncResultView(View):
    request_id: str
    task_id: str
    sku: str
    target: str
    store_scope: str
    status: str
    error_category: str | None
    message: str | None
    fields: list[SyncFieldView]
    at: datetime


class DeadLetterView(View):
    dead_letter_id: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None  # as text, undecodable bytes replaced
    value_size: int
    reason: str
    detail: str
    agent: str
    failed_at: datetime


HistoryKind = Literal["transition", "output", "decision", "sync"]


class HistoryEntry(View):
    """One thing that happened to a product; the lineage of a step is on its output."""

    at: datetime
    kind: HistoryKind
    run_id: str | None
    task_id: str
    action_id: str | None
    attempt: int | None = None
    status: str | None = None
    reason: str | None = None
    failure_category: str | None = None
    input_hash: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    fields: list[FieldResult] = Field(default_factory=list)
    decision: DecisionView | None = None
    sync: SyncResultView | None = None


class ProductHistory(View):
    sku: str
    entries: list[HistoryEntry]  # oldest first


T = TypeVar("T")


class Page(View, Generic[T]):
    items: list[T]
    next_cursor: str | None  # pass back as ``cursor`` for the next page; null: the last


class CommandAccepted(View):
    """A write endpoint's answer: the event is on the topic; the workers act on it."""

    command_id: str
    kind: str
    workflow_id: str | None = None
    run_id: str | None = None


class ErrorBody(View):
    error: str  # a stable code: not-found, bad-request, unauthorized, forbidden, …
    message: str  # what was wrong, for a person


#: Tasks per page when a whole selection is walked (exports, ``all_tasks``).
WALK_PAGE = 500


class ReadSide(Protocol):
    def workflows(self) -> list[WorkflowSummary]: ...

    def workflow(self, workflow_id: str) -> WorkflowDetail: ...

    def runs(self, workflow_id: str | None = None) -> list[RunSummary]: ...

    def run(self, run_id: str) -> RunSummary: ...

    def tasks(
        self, run_id: str, filters: TaskFilter, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[TaskResult]: ...

    def all_tasks(self, run_id: str, filters: TaskFilter) -> Iterator[TaskResult]:
        """Every task the filter selects, page by page (exports)."""
        ...

    def moderation_queue(
        self,
        workflow_id: str | None = None,
        action_id: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
    ) -> Page[ModerationQueueItem]: ...

    def dead_letters(
        self, reason: str | None = None, cursor: str | None = None, limit: int = DEFAULT_PAGE
    ) -> Page[DeadLetterView]: ...

    def dead_letter(self, dead_letter_id: str) -> DeadLetterView: ...

    def history(self, sku: str) -> ProductHistory: ...


def walk_tasks(side: ReadSide, run_id: str, filters: TaskFilter) -> Iterator[TaskResult]:
    """Every task the filter selects, ``WALK_PAGE`` at a time: ``all_tasks`` of each
    read side."""
    cursor: str | None = None
    while True:
        page = side.tasks(run_id, filters, cursor, WALK_PAGE)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
