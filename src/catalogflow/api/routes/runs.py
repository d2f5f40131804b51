"""GET /api/runs and /api/runs/{run_id} (viewer): totals per status and per action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import RunSummary

router = APIRouter(
    prefix="/api/runs",
    tags=["runs"],
    dependencies=[require("viewer")],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]


@router.get("", response_model=list[RunSummary], dependencies=[only("workflow_id")])
def list_runs(queries: Queries, workflow_id: str | None = None) -> list[RunSummary]:
    """Newest first."""
    return queries.runs(workflow_id)


@router.get("/{run_id}", response_model=RunSummary, dependencies=[only()])
def show_run(run_id: str, queries: Queries) -> RunSummary:
    return queries.run(run_id)
