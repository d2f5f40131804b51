"""The Results tab of a workflow: the tasks of a run with one action's outputs,
reasoning and confidence (low confidence flagged), moderation and sync state, the
failure category; filters, paging and the API's CSV and JSON Lines exports.

Filters come from a plain GET form, so an empty field means "any" here rather than
a validation error; a bad value is a 400 page naming the field."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import ValidationError

from catalogflow.api.routes import exports
from catalogflow.api.writes import Queries
from catalogflow.console.pages.workflow import chain
from catalogflow.console.session import Session, signed_in
from catalogflow.console.templating import render
from catalogflow.readmodel.views import DEFAULT_PAGE, TaskFilter
from catalogflow.streams.records import FailureCategory, SyncStatus, TaskStatus

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Session, signed_in("viewer")]

#: The filter fields of the form, as the API names them.
FILTER_FIELDS = ("action", "status", "failure_category", "confidence_below", "q")
STATUSES = TaskStatus.__args__  # type: ignore[attr-defined]
CATEGORIES = FailureCategory.__args__  # type: ignore[attr-defined]
SYNC_STATUSES = SyncStatus.__args__  # type: ignore[attr-defined]


def filters_of(request: Request) -> tuple[TaskFilter, dict[str, str]]:
    """The TaskFilter of the query string, and its non-empty fields (for links)."""
    given = {
        k: v.strip()
        for k in (*FILTER_FIELDS, "moderation_state", "sync_status")
        if (v := request.query_params.get(k)) is not None and v.strip()
    }
    try:
        found = TaskFilter(
            action=given.get("action"),
            status=[given["status"]] if "status" in given else [],
            failure_category=given.get("failure_category"),
            confidence_below=given.get("confidence_below"),  # type: ignore[arg-type]
            moderation_state=given.get("moderation_state"),  # type: ignore[arg-type]
            sync_status=given.get("sync_status"),
            q=given.get("q"),
        )
    except ValidationError as exc:
        where = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise HTTPException(400, f"this filter is not valid: {where}") from None
    return found, given


@router.get("/workflows/{workflow_id}/results", response_class=HTMLResponse)
def results(
    request: Request,
    workflow_id: str,
    session: Viewer,
    queries: Queries,
    run: str | None = None,
    cursor: str | None = None,
) -> Response:
    found = chain(queries, workflow_id)
    runs = queries.runs(workflow_id)
    run_id = run or (runs[0].run_id if runs else None)
    filters, given = filters_of(request)
    if filters.action is None and found.actions:
        filters = filters.model_copy(update={"action": found.actions[0].spec.id})
        given = {**given, "action": found.actions[0].spec.id}
    page = queries.tasks(run_id, filters, cursor, DEFAULT_PAGE) if run_id else None
    query = urlencode({**given, **({"run": run_id} if run_id else {})})
    return render(
        request,
        "results.html",
        session,
        chain=found,
        runs=runs,
        run_id=run_id,
        page=page,
        given=given,
        query=query,
        export_query=urlencode(given),
        statuses=STATUSES,
        categories=CATEGORIES,
    )


@router.get("/runs/{run_id}/export.csv")
def export_csv(request: Request, run_id: str, session: Viewer, queries: Queries) -> Response:
    filters, _ = filters_of(request)
    streamed: StreamingResponse = exports.export_csv(run_id, filters, queries)
    return streamed


@router.get("/runs/{run_id}/export.jsonl")
def export_jsonl(request: Request, run_id: str, session: Viewer, queries: Queries) -> Response:
    filters, _ = filters_of(request)
    streamed: StreamingResponse = exports.export_jsonl(run_id, filters, queries)
    return streamed
