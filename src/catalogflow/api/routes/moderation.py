"""GET /api/moderation (viewer): the pending review queue, riskiest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import DEFAULT_PAGE, MAX_PAGE, ModerationQueueItem, Page

router = APIRouter(
    prefix="/api/moderation",
    tags=["moderation"],
    dependencies=[require("viewer")],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]


@router.get(
    "",
    response_model=Page[ModerationQueueItem],
    dependencies=[only("workflow_id", "action_id", "cursor", "limit")],
)
def moderation_queue(
    queries: Queries,
    workflow_id: str | None = None,
    action_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Page[ModerationQueueItem]:
    return queries.moderation_queue(workflow_id, action_id, cursor, limit)
