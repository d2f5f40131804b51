"""The API's latency for a filtered results page of a big run.

Inserts ``--tasks`` synthetic tasks (two actions, a field each) straight into a fresh
SQLite read model (and into PostgreSQL when ``--postgres URL`` is given), serves the API
with uvicorn on a real port and times pages with httpx: a filtered first page
(``status`` + ``action`` + ``confidence_below``), the same filter walked page by page
through its cursors, and a text search. Prints p50/p95/max in ms per scenario, or with
``--json`` one JSON document.

    .venv/bin/python -m bench.api                 # 100,000 tasks
    .venv/bin/python -m bench.api --tasks 5000 --requests 50 --json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from catalogflow.streams.settings import Settings

from catalogflow.api.app import create_app
from catalogflow.api.auth import entry_line, new_token
from catalogflow.api.server import running
from catalogflow.readmodel import tables as t
from catalogflow.readmodel.store import drop, engine_for, upgrade

RUN, WORKFLOW = "bench-run", "bench-wf"
STATUSES = ["COMPLETED"] * 6 + ["ERROR", "AWAITING_MODERATION", "SYNCED", "WAITING"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 5000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the run (100,000)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--limit", type=int, default=100, help="page size (100)")
    parser.add_argument("--postgres", metavar="URL", help="also a PostgreSQL read model (emptied!)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {"tasks": args.tasks, "limit": args.limit, "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'read-model.sqlite'}"}
        if args.postgres:
            urls["postgresql"] = args.postgres
        for name, url in urls.items():
            engine = engine_for(url)
            if name == "postgresql":
                drop(engine)
            upgrade(engine)
            started = time.perf_counter()
            fill(engine, args.tasks)
            inserted = time.perf_counter() - started
            _progress(f"{name}: {args.tasks} tasks inserted in {inserted:.1f} s")
            results["stores"][name] = {"insert_s": round(inserted, 2), **measure(engine, tmp, args)}
            engine.dispose()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for name, store in results["stores"].items():
            for scenario, row in store["scenarios"].items():
                print(
                    f"{name:10} {scenario:28} p50 {row['p50_ms']:7.1f} ms   "
                    f"p95 {row['p95_ms']:7.1f} ms   max {row['max_ms']:7.1f} ms   "
                    f"({row['requests']} requests, {row['items_per_page']} items/page)"
                )
    return 0


def measure(engine: sa.Engine, tmp: str, args: argparse.Namespace) -> dict[str, Any]:
    token = new_token()
    settings = Settings(data_dir=Path(tmp), api_tokens=entry_line("bench", "viewer", token))
    app = create_app(settings, engine)
    filtered = {"status": "COMPLETED", "action": "describe", "confidence_below": "0.5"}
    scenarios: dict[str, Any] = {}
    with (
        running(app) as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client,
    ):
        page_url = f"/api/runs/{RUN}/tasks"
        _get(client, page_url, {"limit": args.limit})  # warm-up: token check, schema store
        scenarios["filtered first page"] = _time(
            args.requests, lambda: _get(client, page_url, {**filtered, "limit": args.limit})
        )
        scenarios["filtered, walking cursors"] = _time(
            args.requests, _walker(client, page_url, {**filtered, "limit": args.limit})
        )
        scenarios["text search"] = _time(
            args.requests, lambda: _get(client, page_url, {"q": "sku-0042", "limit": args.limit})
        )
        scenarios["unfiltered page"] = _time(
            args.requests, lambda: _get(client, page_url, {"limit": args.limit})
        )
    return {"scenarios": scenarios}


def _get(client: httpx.Client, url: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(url, params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _walker(client: httpx.Client, url: str, params: dict[str, Any]) -> Any:
    """Each call fetches the next page of the filter (from the start after the last)."""
    state: dict[str, str | None] = {"cursor": None}

    def step() -> dict[str, Any]:
        extra = {"cursor": state["cursor"]} if state["cursor"] else {}
        page = _get(client, url, {**params, **extra})
        state["cursor"] = page["next_cursor"]
        return page

    return step


def _time(requests: int, call: Any) -> dict[str, Any]:
    samples, items = [], 0
    for _ in range(requests):
        started = time.perf_counter()
        page = call()
        samples.append((time.perf_counter() - started) * 1000)
        items = max(items, len(page["items"]))
    samples.sort()
    return {
        "requests": requests,
        "items_per_page": items,
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": round(samples[max(0, int(len(samples) * 0.95) - 1)], 2),
        "max_ms": round(samples[-1], 2),
    }


def fill(engine: sa.Engine, count: int) -> None:
    rng = random.Random(11)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t.workflows),
            [
                {
                    "workflow_id": WORKFLOW,
                    "name": "bench",
                    "mode": "one_time",
                    "latest_version": 1,
                    "actions": [
                        {"id": "extract", "type": "extraction"},
                        {"id": "describe", "type": "generation"},
                    ],
                    "applied_by": "bench",
                    "applied_at": T0,
                }
            ],
        )
        conn.execute(
            sa.insert(t.runs),
            [
                {
                    "run_id": RUN,
                    "workflow_id": WORKFLOW,
                    "workflow_version": 1,
                    "mode": "one_time",
                    "status": "RUNNING",
                    "partitions": 8,
                    "partitions_scanned": 8,
                    "tasks_created": count,
                    "counts": {},
                    "action_counts": {},
                    "started_at": T0,
                    "finished_at": None,
                    "cost": 0.0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "budget": None,
                    "budget_reached": False,
                    "record": b"",
                }
            ],
        )
    for start in range(0, count, BATCH):
        tasks, outputs = [], []
        for i in range(start, min(count, start + BATCH)):
            task, task_outputs = _task(i, rng)
            tasks.append(task)
            outputs += task_outputs
        with engine.begin() as conn:
            conn.execute(sa.insert(t.tasks), tasks)
            conn.execute(sa.insert(t.task_outputs), outputs)


def _task(i: int, rng: random.Random) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    sku, task_id = f"SKU-{i:07d}", f"SKU-{i:07d}@{RUN}"
    confidences = {"extract": rng.random(), "describe": rng.random()}
    outputs = [
        {
            "task_id": task_id,
            "action_id": action,
            "attempt": 0,
            "field": "flavor" if action == "extract" else "description",
            "locale": "" if action == "extract" else "de_DE",
            "run_id": RUN,
            "sku": sku,
            "value": "Chicken" if action == "extract" else f"A generated text for {sku}.",
            "reasoning": "synthetic",
            "confidence": confidence,
            "evidence": None,
            "approved": False,
            "model": "gpt-4o-mini",
            "prompt_version": "v1",
        }
        for action, confidence in confidences.items()
    ]
    task = {
        "task_id": task_id,
        "run_id": RUN,
        "workflow_id": WORKFLOW,
        "sku": sku,
        "action_id": "describe",
        "step_index": 1,
        "status": rng.choice(STATUSES),
        "reason": None,
        "failure_category": None,
        "attempt": 0,
        "at": T0 + timedelta(seconds=i),
        "min_confidence": min(confidences.values()),
        "moderation_state": None,
        "sync_status": None,
        "search_text": f"{sku.lower()} a generated text for {sku.lower()}.",
        "cost": 0.001,
        "input_tokens": 100,
        "output_tokens": 20,
        "record": b"",
    }
    return task, outputs


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
