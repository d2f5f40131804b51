"""GET /api/workflows and /api/workflows/{workflow_id} (viewer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import WorkflowDetail, WorkflowSummary

router = APIRouter(
    prefix="/api/workflows",
    tags=["workflows"],
    dependencies=[require("viewer")],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]


@router.get("", response_model=list[WorkflowSummary], dependencies=[only()])
def list_workflows(queries: Queries) -> list[WorkflowSummary]:
    return queries.workflows()


@router.get("/{workflow_id}", response_model=WorkflowDetail, dependencies=[only()])
def show_workflow(workflow_id: str, queries: Queries) -> WorkflowDetail:
    return queries.workflow(workflow_id)
