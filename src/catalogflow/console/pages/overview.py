"""The workflow overview: one card per workflow with its latest run's progress,
refreshed in place every few seconds (htmx polls the cards fragment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from catalogflow.api.deps import queries_of
from catalogflow.console.session import Session, signed_in
from catalogflow.console.templating import render
from catalogflow.progress import RunProgress, run_progress
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import RunSummary, WorkflowSummary

router = APIRouter(include_in_schema=False)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]
Viewer = Annotated[Session, signed_in("viewer")]


@dataclass(frozen=True)
class WorkflowCard:
    workflow: WorkflowSummary
    run: RunSummary | None
    progress: RunProgress | None
    created_at: object  # the first version's time


def cards(queries: ReadModelQueries) -> list[WorkflowCard]:
    out = []
    for workflow in queries.workflows():
        run = queries.runs(workflow.workflow_id)[:1]
        versions = queries.workflow(workflow.workflow_id).versions
        created = versions[-1].applied_at if versions else workflow.applied_at
        latest = run[0] if run else None
        progress = run_progress(latest) if latest else None
        out.append(WorkflowCard(workflow, latest, progress, created))
    return out


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: Viewer, queries: Queries) -> Response:
    return render(request, "overview.html", session, cards=cards(queries))


@router.get("/fragments/overview", response_class=HTMLResponse)
def overview_cards(request: Request, session: Viewer, queries: Queries) -> Response:
    return render(request, "overview_cards.html", session, cards=cards(queries))
