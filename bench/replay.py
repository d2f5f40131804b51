"""Replay economics: a second one-time run over unchanged products costs nothing.

The seed workflow (``examples/dry-cat-food.yaml``, moderation ``none`` on every step)
runs over N imported Dry Cat Food products to Completed on one worker with default
settings, against zero-latency simulators; then the same workflow runs again over the
same, unchanged products. The simulators count what the second run asked of them.
Goal: zero model calls (the result cache answers each one) and zero Magento writes
(the sync ledger holds every value).

Progress on stderr; a table (or with ``--json`` one JSON document) on stdout. Exit 0
when it ran; with ``--check``, 1 when the second run called the model or wrote.

    .venv/bin/python -m bench.replay --help
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.settings import Settings
from catalogflow.testbench.llm.simulator import SimulatorConfig
from catalogflow.testbench.magento.simulator import seed_sample
from catalogflow.testbench.workerproc import WorkerProcess

from bench.efficiency_probes import RecordingLLMThread, by_method, magento_thread, requests_since
from bench.efficiency_runs import (
    SEED_ACTION_TYPES,
    SEED_FILE,
    Endpoints,
    matching_changes,
    publish,
    seed_definition,
    start_worker,
    worker_settings,
)
from bench.harness import say, start_broker, stop_on_signals


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay",
        description="Model calls and Magento writes of a second run over unchanged products.",
    )
    parser.add_argument("--products", type=int, default=500, help="matching products (500)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    parser.add_argument("--workdir", type=Path, default=None, help="keep broker data and logs here")
    parser.add_argument("--bootstrap", default=None, help="use this broker instead of starting one")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with stop_on_signals(), ExitStack() as cleanup:
            result = measure(args, cleanup)
    except KeyboardInterrupt:
        say("interrupted; everything started here was stopped")
        return 130
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(result))
    missed = result["second"]["model_calls"] > 0 or result["second"]["magento_writes"] > 0
    return 1 if args.check and missed else 0


def measure(args: argparse.Namespace, cleanup: ExitStack) -> dict[str, Any]:
    workdir = args.workdir or Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
    bootstrap = args.bootstrap or start_broker(workdir / "kafka", cleanup)
    llm = cleanup.enter_context(RecordingLLMThread(SimulatorConfig(burst_window_s=None)))
    shop_thread, shop = magento_thread()
    cleanup.enter_context(shop_thread)
    seed_sample(shop, 4 * args.products)
    for code in ("shopping_title", "shopping_description"):  # what the seed workflow writes
        shop.add_attribute(code, "text")
    ends = Endpoints(bootstrap, llm, shop_thread.url, shop, shop.issue_integration_token(), workdir)
    settings = worker_settings(ends)
    ensure_topics(settings, action_types=SEED_ACTION_TYPES)
    worker, _ = start_worker(ends, settings, "replay", cleanup)
    changes = matching_changes(args.products)
    publish(settings, changes)
    worker.wait_for("/products/", lambda a: a["count"] == len(changes), timeout=600)
    definition = seed_definition("one_time")
    apply_definition(settings, definition, SEED_FILE.name, "bench")
    first = _run(ends, settings, worker, definition.id, "first", len(changes))
    second = _run(ends, settings, worker, definition.id, "second", len(changes))
    return {"products": len(changes), "first": first, "second": second}


def _run(
    ends: Endpoints,
    settings: Settings,
    worker: WorkerProcess,
    workflow_id: str,
    name: str,
    products: int,
) -> dict[str, Any]:
    """One run of the workflow to Completed: its counts and what it asked of the
    simulators."""
    calls = int(ends.llm.stats()["requests"])
    started = time.time()
    run_id = start_run(settings, workflow_id, "bench")
    run = worker.wait_for(
        f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=300 + products
    )
    requests = requests_since(ends.shop, started)
    result = {
        "seconds": round(time.time() - started, 1),
        "counts": dict(run.get("counts", {})),
        "model_calls": int(ends.llm.stats()["requests"]) - calls,
        "magento_requests": by_method(requests),
        "magento_writes": sum(1 for r in requests if r.written_sku is not None),
    }
    say(f"[{name} run] {result}")
    return result


def report(result: dict[str, Any]) -> str:
    lines = [f"replay economics, {result['products']} products, the same run twice"]
    lines.append("run     seconds  tasks                     model calls  Magento requests")
    for name in ("first", "second"):
        run = result[name]
        requests = ", ".join(f"{m} {n}" for m, n in sorted(run["magento_requests"].items()))
        lines.append(
            f"{name:<7} {run['seconds']:>7}  {json.dumps(run['counts']):<25} "
            f"{run['model_calls']:>11}  {requests or 'none'} ({run['magento_writes']} writes)"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
