"""A product's history across runs (the API's lineage), reachable from every result row
and queue item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from catalogflow.api.writes import Queries
from catalogflow.console.session import Session, signed_in
from catalogflow.console.templating import render

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Session, signed_in("viewer")]


@router.get("/products/{sku:path}", response_class=HTMLResponse)
def product_history(request: Request, sku: str, session: Viewer, queries: Queries) -> Response:
    return render(request, "history.html", session, history=queries.history(sku))
