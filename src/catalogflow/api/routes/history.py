"""GET /api/products/{sku}/history (viewer): one product across runs, oldest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from catalogflow.api.auth import require
from catalogflow.api.deps import queries_of
from catalogflow.api.errors import ERROR_RESPONSES
from catalogflow.api.params import only
from catalogflow.readmodel.queries import ReadModelQueries
from catalogflow.readmodel.views import ProductHistory

router = APIRouter(
    prefix="/api/products",
    tags=["history"],
    dependencies=[require("viewer")],
    responses=ERROR_RESPONSES,
)
Queries = Annotated[ReadModelQueries, Depends(queries_of)]


@router.get("/{sku}/history", response_model=ProductHistory, dependencies=[only()])
def product_history(sku: str, queries: Queries) -> ProductHistory:
    return queries.history(sku)
