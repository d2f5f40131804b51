"""GET /api/runs/{run_id}/export.csv and export.jsonl (viewer): every selected task,
streamed page by page in the format of ``readmodel/export.py``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.api.routes.tasks import FILTERS, Filters
from catalogflow.readmodel.export import CSV_COLUMNS, csv_rows, jsonl_line
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import TaskResult

router = APIRouter(
    prefix="/api/runs",
    tags=["exports"],
    dependencies=[require("viewer"), only(*FILTERS)],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]


@router.get(
    "/{run_id}/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_csv(run_id: str, filters: Filters, queries: Queries) -> StreamingResponse:
    tasks = _checked(queries, run_id, filters)
    return StreamingResponse(
        _csv_chunks(tasks), media_type="text/csv; charset=utf-8", headers=_named(run_id, "csv")
    )


@router.get(
    "/{run_id}/export.jsonl",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_jsonl(run_id: str, filters: Filters, queries: Queries) -> StreamingResponse:
    tasks = _checked(queries, run_id, filters)
    return StreamingResponse(
        (jsonl_line(task) for task in tasks),
        media_type="application/x-ndjson",
        headers=_named(run_id, "jsonl"),
    )


def _checked(queries: ReadModelQueries, run_id: str, filters: Filters) -> Iterator[TaskResult]:
    """The tasks, with an unknown run or a bad filter raised now: a 404/400, not a
    stream cut off after its 200."""
    first = queries.tasks(run_id, filters, limit=1)

    def rest() -> Iterator[TaskResult]:
        if first.items:
            yield from queries.all_tasks(run_id, filters)

    return rest()


def _csv_chunks(tasks: Iterator[TaskResult]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for task in tasks:
        writer.writerows(csv_rows(task))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _named(run_id: str, ext: str) -> dict[str, str]:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return {"Content-Disposition": f'attachment; filename="{safe}.{ext}"'}
