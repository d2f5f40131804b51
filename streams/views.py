"""Read-only HTTP views of worker state, for operators, probes and tests.

``/health/`` answers while the process lives and says whether the worker is
unassigned, recovering or serving (:mod:`catalogflow.streams.workerstate`);
``/health/ready/`` is 200 only while serving.

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
from catalogflow.streams.workerstate import held_rows, holds, record_state
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
        """Liveness: the process answers; the body says what it is doing."""

        async def get(self, request: Request) -> Response:
            state = record_state(app)
            return self.json(
                {
                    "pid": os.getpid(),
                    "app_id": topology.settings.app_id,
                    "worker_id": topology.settings.worker_id,
                    **state.as_json(),
                }
            )

    @app.page("/health/ready/")
    class Ready(View):
        """Readiness: 200 once serving, 503 while unassigned or recovering, so a rolling
        restart waits for a worker's tables before it stops the next one."""

        async def get(self, request: Request) -> Response:
            state = record_state(app)
            return self.json(state.as_json(), status=200 if state.state == "serving" else 503)

    @app.page("/products/")
    class ProductsSummary(View):
        async def get(self, request: Request) -> Response:
            rows = {key: value for key, value in held_rows(app, products)}
            return self.json({"count": len(rows), "digest": table_digest(rows)})

    runs = topology.tables["runs"]
    states = topology.tables["task-states"]

    @app.page("/runs/{run_id}/")
    class RunDetail(View):
        async def get(self, request: Request, run_id: str) -> Response:
            run = runs.get(run_id) if holds(app, runs, run_id) else None
            if run is None:
                return self.json({"error": f"no run {run_id!r} on this worker"}, status=404)
            return self.json(_jsonable(run))

    @app.page("/runs/{run_id}/tasks/")
    class RunTasks(View):
        async def get(self, request: Request, run_id: str) -> Response:
            rows = [s for _, s in held_rows(app, states) if s["run_id"] == run_id]
            return self.json({"tasks": [_jsonable(s) for s in rows]})

    @app.page("/products/{sku}/")
    class ProductDetail(View):
        async def get(self, request: Request, sku: str) -> Response:
            snapshot = products.get(sku) if holds(app, products, sku) else None
            if snapshot is None:
                return self.json(
                    {"error": f"no product with sku {sku!r} on this worker"}, status=404
                )
            return self.json(_jsonable(snapshot))


def _jsonable(record: Any) -> Any:
    return json.loads(json.dumps(record, default=str))
