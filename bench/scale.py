"""Scale-out benchmark: one worker against two on a provider-bound run, and the memory
of a worker whose tables hold many products in RocksDB.

``provider``: the seed workflow (moderation ``none``) over N matching products, with the
LLM simulator limited to R requests per minute and answering in L seconds, once with
one worker and once with two (fresh topics each time, the same broker and simulators).
The limit is one account's limit, shared by every worker: each worker learns what is
left of it from the ``x-ratelimit-*`` headers of its own answers (``llm_rpm=0``, the
default), which is how a catalog team runs several workers on one API key. With
``--split`` each worker is instead configured with ``llm_rpm=R/workers``. Reported per
run: products per second to Completed, model requests per minute as a share of R, and
429s. The ratio two/one says whether a second worker helps (it cannot beat the
provider's limit) or hurts (429 storms from two limiters guessing at one bucket).

``memory``: one worker with the RocksDB store imports M sample products; its resident
set size (``VmRSS``) before the import, once all M are in its products table, and after
a restart that reopens the same RocksDB files.

    .venv/bin/python -m bench.scale --help
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.localbroker.launcher import free_port
from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.testbench.llm.simulator import SimulatorConfig
from catalogflow.testbench.magento.simulator import seed_sample

from bench.efficiency_probes import RecordingLLMThread, magento_thread, model_requests_since
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

WORKER_IDS = ("w1", "w2", "w3", "w4")


@dataclass(frozen=True)
class ProviderRun:
    workers: int
    limit_sharing: str  # "headers" or "split"
    products: int
    seconds: float
    products_per_s: float
    model_requests: int
    requests_per_min: float
    share_of_limit: float
    rate_limited: int
    run_counts: dict[str, int]


def provider_run(
    ends: Endpoints, workers: int, products: int, rpm: int, split: bool
) -> ProviderRun:
    """The seed workflow over ``products`` matching products with ``workers`` workers."""
    base = worker_settings(ends)
    ensure_topics(base, action_types=SEED_ACTION_TYPES)
    changes = matching_changes(products, first=0)
    limited_before = int(ends.llm.stats()["rate_limited"])
    with ExitStack() as stop:
        started = []
        for index in range(workers):
            settings = base.replace(
                worker_id=WORKER_IDS[index],
                web_port=free_port(),
                data_dir=base.data_dir / WORKER_IDS[index],
                llm_rpm=rpm // workers if split else 0,
            )
            worker, _ = start_worker(ends, settings, f"{workers}w-{WORKER_IDS[index]}", stop)
            started.append(worker)
        publish(base, changes)
        _wait_imported(started, products)
        definition = seed_definition("one_time")
        apply_definition(base, definition, SEED_FILE.name, "bench")
        say(f"[{workers} worker(s)] running the seed workflow over {products} products …")
        began = time.time()
        run_id = start_run(base, definition.id, "bench")
        run = _wait_completed(started, run_id, timeout=120 + 3 * 60 * products / rpm * 3)
        seconds = time.time() - began
    requests = [r for r in model_requests_since(ends.llm, began) if r.arrived <= began + seconds]
    limited = int(ends.llm.stats()["rate_limited"]) - limited_before
    per_min = len(requests) / seconds * 60
    result = ProviderRun(
        workers=workers,
        limit_sharing="split" if split else "headers",
        products=products,
        seconds=round(seconds, 1),
        products_per_s=round(products / seconds, 2),
        model_requests=len(requests),
        requests_per_min=round(per_min, 1),
        share_of_limit=round(per_min / rpm, 3),
        rate_limited=limited,
        run_counts=dict(run.get("counts", {})),
    )
    say(f"[{workers} worker(s)] {result}")
    return result


def _wait_imported(workers: list[Any], products: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        held = sum(int(w.get("/products/")["count"]) for w in workers)
        if held >= products:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the workers never held all {products} products")


def _wait_completed(workers: list[Any], run_id: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            run = worker.get(f"/runs/{run_id}/")
            if run.get("status") == "COMPLETED":
                return run
        time.sleep(1.0)
    views = [w.get(f"/runs/{run_id}/") for w in workers]
    raise TimeoutError(f"run {run_id} did not complete within {timeout:.0f} s: {views}")


@dataclass(frozen=True)
class MemoryRun:
    products: int
    rss_mb_started: float
    rss_mb_holding: float
    rss_mb_restarted: float
    import_seconds: float


def memory_run(ends: Endpoints, products: int) -> MemoryRun:
    settings = worker_settings(ends).replace(store="rocksdb://", worker_id="mem")
    ensure_topics(settings, action_types=SEED_ACTION_TYPES)
    with ExitStack() as stop:
        worker, pid = start_worker(ends, settings, "memory", stop)
        started = _rss_mb(pid)
        began = time.monotonic()
        say(f"[memory] importing {products} products …")
        for first in range(0, products, 10_000):
            publish(settings, list(sample_changes(min(10_000, products - first), start=first)))
        worker.wait_for("/products/", lambda a: a["count"] == products, timeout=1800)
        imported = time.monotonic() - began
        time.sleep(5)  # let the store settle its write buffers
        holding = _rss_mb(pid)
        worker.stop()
        again, pid = start_worker(ends, settings, "memory-restarted", stop)
        again.wait_for("/products/", lambda a: a["count"] == products, timeout=600)
        restarted = _rss_mb(pid)
    result = MemoryRun(products, started, holding, restarted, round(imported, 1))
    say(f"[memory] {result}")
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description="One worker against two on a provider-bound run; a worker's memory "
        "with many products in RocksDB.",
    )
    parser.add_argument("--mode", choices=("provider", "memory", "all"), default="all")
    parser.add_argument("--products", type=int, default=300, help="provider run (default 300)")
    parser.add_argument("--rpm", type=int, default=600, help="model requests/min (default 600)")
    parser.add_argument("--latency", type=float, default=0.5, help="model seconds (default 0.5)")
    parser.add_argument(
        "--split", action="store_true", help="also run with llm_rpm=R/workers on each worker"
    )
    parser.add_argument(
        "--memory-products", type=int, default=100_000, help="memory run (default 100000)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--workdir", type=Path, default=None, help="keep broker data and logs")
    parser.add_argument("--bootstrap", default=None, help="use this running broker")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, cleanup: ExitStack) -> dict[str, Any]:
    if args.workdir is None:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    bootstrap = args.bootstrap or start_broker(workdir / "kafka", cleanup, heap_mb=2048)
    config = SimulatorConfig(rpm=args.rpm, latency_s=args.latency)
    llm = cleanup.enter_context(RecordingLLMThread(config))
    shop_thread, shop = magento_thread()
    cleanup.enter_context(shop_thread)
    seed_sample(shop, 4 * args.products)
    for code in ("shopping_title", "shopping_description"):
        shop.add_attribute(code, "text")
    ends = Endpoints(bootstrap, llm, shop_thread.url, shop, shop.issue_integration_token(), workdir)
    results: dict[str, Any] = {"rpm": args.rpm, "latency_s": args.latency}
    if args.mode in ("provider", "all"):
        runs = [provider_run(ends, n, args.products, args.rpm, split=False) for n in (1, 2)]
        if args.split:
            runs.append(provider_run(ends, 2, args.products, args.rpm, split=True))
        results["provider"] = [asdict(r) for r in runs]
        results["two_over_one"] = round(runs[1].products_per_s / runs[0].products_per_s, 3)
    if args.mode in ("memory", "all"):
        results["memory"] = asdict(memory_run(ends, args.memory_products))
    return results


def report(results: dict[str, Any]) -> str:
    lines = []
    if "provider" in results:
        lines.append(
            f"provider-bound: {results['rpm']} requests/min, {results['latency_s']} s per call"
        )
        lines.append("workers  limit    products/s  requests/min  of limit  429s")
        for r in results["provider"]:
            lines.append(
                f"{r['workers']:>7}  {r['limit_sharing']:<7}  {r['products_per_s']:>10}  "
                f"{r['requests_per_min']:>12}  {r['share_of_limit']:>8.0%}  {r['rate_limited']:>4}"
            )
        lines.append(f"two workers / one: {results['two_over_one']}")
    if "memory" in results:
        m = results["memory"]
        lines.append(
            f"memory, RocksDB, {m['products']} products: {m['rss_mb_started']} MB at start, "
            f"{m['rss_mb_holding']} MB holding them (import {m['import_seconds']} s), "
            f"{m['rss_mb_restarted']} MB after a restart on the same files"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with stop_on_signals(), ExitStack() as cleanup:
            results = run(args, cleanup)
    except KeyboardInterrupt:
        say("interrupted; everything started here was stopped")
        return 130
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
