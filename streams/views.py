"""Read-only HTTP views of worker state, for operators and for tests.

``/products/`` gives the count and a digest of the rows this worker holds, so two
workers (or one worker before and after a restart) can be compared cheaply.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from catalogflow.streams.app import Topology
from faust.web import Request, Response, View


def table_digest(rows: Mapping[str, object]) -> str:
    """Order-independent sha256 of a table's rows."""
    digest = hashlib.sha256()
    for key in sorted(rows):
        digest.update(key.encode())
        digest.update(json.dumps(rows[key], sort_keys=True, default=str).encode())
    return digest.hexdigest()


def register(topology: Topology) -> None:
    app = topology.app
    products = topology.products

    @app.page("/health/")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"pid": os.getpid(), "app_id": topology.settings.app_id})

    @app.page("/products/")
    class ProductsSummary(View):
        async def get(self, request: Request) -> Response:
            rows = {key: value for key, value in products.items() if value is not None}
            return self.json({"count": len(rows), "digest": table_digest(rows)})

    runs = topology.tables["runs"]
    states = topology.tables["task-states"]

    @app.page("/runs/{run_id}/")
    class RunDetail(View):
        async def get(self, request: Request, run_id: str) -> Response:
            run = runs.get(run_id)
            if run is None:
                return self.json({"error": f"no run {run_id!r}"}, status=404)
            return self.json(_jsonable(run))

    @app.page("/runs/{run_id}/tasks/")
    class RunTasks(View):
        async def get(self, request: Request, run_id: str) -> Response:
            rows = [s for s in states.values() if s is not None and s["run_id"] == run_id]
            return self.json({"tasks": [_jsonable(s) for s in rows]})

    @app.page("/products/{sku}/")
    class ProductDetail(View):
        async def get(self, request: Request, sku: str) -> Response:
            snapshot = products.get(sku)
            if snapshot is None:
                return self.json({"error": f"no product with sku {sku!r}"}, status=404)
            return self.json(_jsonable(snapshot))


def _jsonable(record: Any) -> Any:
    return json.loads(json.dumps(record, default=str))
