"""GET /api/runs/{run_id}/tasks (viewer): a run's results, filtered and cursor-paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import (
    DEFAULT_PAGE,
    MAX_PAGE,
    ModerationState,
    Page,
    TaskFilter,
    TaskResult,
)
from catalogflow.streams.records import FailureCategory, SyncStatus, TaskStatus

router = APIRouter(
    prefix="/api/runs",
    tags=["tasks"],
    dependencies=[require("viewer")],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]

FILTERS = (
    "action",
    "status",
    "failure_category",
    "confidence_below",
    "moderation_state",
    "sync_status",
    "q",
)


def task_filter(
    action: str | None = None,
    status: Annotated[list[TaskStatus] | None, Query(description="repeatable; any of them")] = None,
    failure_category: FailureCategory | None = None,
    confidence_below: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    moderation_state: ModerationState | None = None,
    sync_status: SyncStatus | None = None,
    q: Annotated[str | None, Query(description="SKU or text, case-insensitive")] = None,
) -> TaskFilter:
    """The Results filters from the query string (also the export routes')."""
    return TaskFilter(
        action=action,
        status=list(status or []),
        failure_category=failure_category,
        confidence_below=confidence_below,
        moderation_state=moderation_state,
        sync_status=sync_status,
        q=q,
    )


Filters = Annotated[TaskFilter, Depends(task_filter)]


@router.get(
    "/{run_id}/tasks",
    response_model=Page[TaskResult],
    dependencies=[only(*FILTERS, "cursor", "limit")],
)
def list_tasks(
    run_id: str,
    filters: Filters,
    queries: Queries,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Page[TaskResult]:
    return queries.tasks(run_id, filters, cursor, limit)
