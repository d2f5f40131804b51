"""GET /api/dead-letters and /api/dead-letters/{dead_letter_id} (admin: they hold the
raw records that could not be used)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import DEFAULT_PAGE, MAX_PAGE, DeadLetterView, Page

router = APIRouter(
    prefix="/api/dead-letters",
    tags=["dead-letters"],
    dependencies=[require("admin")],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]


@router.get(
    "", response_model=Page[DeadLetterView], dependencies=[only("reason", "cursor", "limit")]
)
def list_dead_letters(
    queries: Queries,
    reason: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> Page[DeadLetterView]:
    return queries.dead_letters(reason, cursor, limit)


@router.get("/{dead_letter_id}", response_model=DeadLetterView, dependencies=[only()])
def show_dead_letter(dead_letter_id: str, queries: Queries) -> DeadLetterView:
    return queries.dead_letter(dead_letter_id)
