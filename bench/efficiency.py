"""Efficiency benchmark: what the pipeline itself costs per product, next to a bare faust
chain, with zero-latency model and Magento simulators.

Modes (``--mode``; ``all`` runs each once, the cost from the throughput run):

* ``throughput`` — N matching products of the seed workflow (``examples/dry-cat-food.yaml``,
  moderation ``none`` on every step) on one worker with default settings: products/s to
  the last Magento write and to the run's Completed, every model and Magento request
  recorded by product. Then, in the same run on the same broker, the bare chain
  (``bench/bare_chain.py``: four faust agents over four topics, raw records of 2.3-3.0
  kB) three times: Kafka hops only; with the issue's calls (one plain chat completion
  per hop, one Magento PUT); and with the same HTTP calls as catalogflow (each product's
  recorded requests replayed: the model requests at the hops of the steps that made
  them, the Magento ones in order at the last); the ratios catalogflow / bare. Target:
  catalogflow >= 0.5 x bare with the same HTTP calls.
* ``cost`` — of that catalogflow run: the worker's CPU per product (``/proc/<pid>/stat``),
  Kafka messages and key + value bytes per product by topic (changelogs included, from
  end offsets before and after and reading the new messages), model calls and Magento
  requests per product by method.
* ``continuous`` — the same actions as a continuous workflow; new matching products
  published at R per second for T seconds; latency from each publish to the Magento
  simulator receiving the product's last write (every store view), p50/p99, and the
  written rate; ``--workers 2`` runs two workers of one app. Targets: p99 < 1 s at
  50/s on one worker, at 100/s on two.

Progress on stderr; tables (or with ``--json`` one JSON document) on stdout. Exit 0 when
it ran; with ``--check``, 1 when a target was missed. Every process started here (broker,
workers, the bare chain, the simulator threads) is stopped on exit, Ctrl-C and SIGTERM.

    .venv/bin/python -m bench.efficiency --help
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from catalogflow.localbroker.launcher import free_port
from catalogflow.testbench.llm.simulator import SimulatorConfig
from catalogflow.testbench.magento.simulator import seed_sample

from bench import recorded_calls
from bench.bare_chain import ChainConfig, ChainResult, run_chain
from bench.efficiency_probes import RecordingLLMThread, magento_thread
from bench.efficiency_runs import (
    CatalogflowResult,
    Endpoints,
    run_continuous,
    run_throughput,
)
from bench.harness import say, start_broker, stop_on_signals

#: Acceptance targets of the efficiency issue.
MIN_RATIO_TO_BARE_SAME_CALLS = 0.5
MAX_P99_S = 1.0
CONTINUOUS_TARGET_RATE = {1: 50.0, 2: 100.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.efficiency",
        description="catalogflow's throughput, cost per product and continuous latency "
        "with zero-latency simulators, next to a bare faust chain.",
    )
    parser.add_argument(
        "--mode", choices=("throughput", "cost", "continuous", "all"), default="all"
    )
    parser.add_argument(
        "--products", type=int, default=2000, help="matching products (default 2000)"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="continuous changes/s (default 50 per worker)"
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="continuous publishing time (default 60)"
    )
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1, help="continuous")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--workdir", type=Path, default=None, help="keep broker data and logs here")
    parser.add_argument(
        "--bootstrap", default=None, help="use this running broker instead of starting one"
    )
    args = parser.parse_args(argv)
    if args.rate is None:
        args.rate = CONTINUOUS_TARGET_RATE[args.workers]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with stop_on_signals(), ExitStack() as cleanup:
            results = run(args, cleanup)
    except KeyboardInterrupt:
        say("interrupted; everything started here was stopped")
        return 130
    missed = missed_targets(results)
    if args.json:
        print(json.dumps({**results, "missed_targets": missed}, indent=2))
    else:
        print(report(results, missed))
    return 1 if args.check and missed else 0


def run(args: argparse.Namespace, cleanup: ExitStack) -> dict[str, Any]:
    if args.workdir is None:
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-eff-")))
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    bootstrap = args.bootstrap or start_broker(workdir / "kafka", cleanup)
    llm = cleanup.enter_context(RecordingLLMThread(SimulatorConfig(burst_window_s=None)))
    shop_thread, shop = magento_thread()
    cleanup.enter_context(shop_thread)
    continuous_count = int(args.rate * args.seconds) + 200
    seed_sample(shop, 4 * (args.products + continuous_count))
    for code in ("shopping_title", "shopping_description"):
        shop.add_attribute(code, "text")
    ends = Endpoints(
        bootstrap=bootstrap,
        llm=llm,
        magento_url=shop_thread.url,
        shop=shop,
        token=shop.issue_integration_token(),
        workdir=workdir,
    )
    say(f"LLM simulator at {llm.url}, Magento simulator at {shop_thread.url}")
    results: dict[str, Any] = {"products": args.products}
    if args.mode in ("throughput", "cost", "all"):
        results.update(throughput(ends, args, cleanup))
    if args.mode in ("continuous", "all"):
        first = 4 * args.products  # after the throughput run's products
        measured = run_continuous(ends, args.rate, args.seconds, args.workers, first)
        results["continuous"] = asdict(measured)
    return results


#: The bare chains, in the order they run (after catalogflow): result key, label, variant.
BARE_CHAINS = (
    ("bare_hops_only", "bare hops only", "hops"),
    ("bare_http", "bare + the issue's calls (1 chat/hop, 1 PUT)", "chat_per_hop"),
    ("bare_same_calls", "bare + the same HTTP calls as catalogflow", "same_calls"),
)


def throughput(ends: Endpoints, args: argparse.Namespace, cleanup: ExitStack) -> dict[str, Any]:
    """catalogflow first, recording its requests; then (not for ``cost``) the bare chains
    on the same broker, the last one replaying those requests."""
    catalogflow, recorded = run_throughput(ends, args.products)
    out: dict[str, Any] = {
        "catalogflow": asdict(catalogflow),
        "recorded_requests_per_product": recorded.per_product(),
        "unattributed_requests": recorded.unattributed,
    }
    if args.mode == "cost":
        return out
    calls_file = ends.workdir / "catalogflow-requests.json"
    recorded_calls.write(recorded, calls_file)
    skus = list(recorded.by_sku)
    for key, label, variant in BARE_CHAINS:
        config = ChainConfig(
            app_id=f"bare{uuid.uuid4().hex[:8]}",
            bootstrap=ends.bootstrap,
            topic_prefix=f"bare{uuid.uuid4().hex[:8]}.",
            partitions=8,  # the worker's default
            web_port=free_port(),
            variant=variant,
            llm_url=ends.llm.url,
            magento_url=ends.magento_url,
            magento_token=ends.token,
            calls_file=str(calls_file),
        )
        log = ends.workdir / f"bare-{variant}.log"
        chain = run_chain(label, config, skus, log, cleanup, lambda: _requests_so_far(ends))
        out[key] = asdict(chain)
        out[f"ratio_to_{key}"] = _ratio(catalogflow, chain)
    return out


def _requests_so_far(ends: Endpoints) -> Counter[str]:
    """Every request both simulators received so far: ``model``, and Magento's by method."""
    counts = Counter(r.method for r in list(ends.shop.requests))
    counts["model"] = int(ends.llm.stats()["requests"])
    return counts


def _ratio(catalogflow: CatalogflowResult, chain: ChainResult) -> float:
    return round(catalogflow.products_per_s_last_write / chain.products_per_s, 3)


def missed_targets(results: dict[str, Any]) -> list[str]:
    missed = []
    ratio = results.get("ratio_to_bare_same_calls")
    if ratio is not None and ratio < MIN_RATIO_TO_BARE_SAME_CALLS:
        missed.append(
            f"catalogflow / bare with the same HTTP calls = {ratio} < "
            f"{MIN_RATIO_TO_BARE_SAME_CALLS}"
        )
    continuous = results.get("continuous")
    if continuous is not None:
        target = CONTINUOUS_TARGET_RATE[continuous["workers"]]
        p99 = continuous["p99_s"]
        if continuous["rate"] < target:
            missed.append(f"continuous rate {continuous['rate']}/s is below the target's {target}")
        if p99 is None or p99 >= MAX_P99_S:
            missed.append(f"continuous p99 {p99} s is not under {MAX_P99_S} s")
    return missed


# -- the human report ----------------------------------------------------------------------


def report(results: dict[str, Any], missed: list[str]) -> str:
    lines: list[str] = []
    if "catalogflow" in results:
        cf = results["catalogflow"]
        if "bare_same_calls" in results:
            catalogflow_requests = dict(cf["magento_requests_per_product"])
            catalogflow_requests["model"] = cf["model_calls_per_product"]
            lines += [
                f"throughput, {results['products']} products (products/s, CPU ms and HTTP "
                "requests per product)",
                table(
                    ["run", "products/s", "CPU ms/product", "requests/product"],
                    [
                        *(_chain_row(results[key]) for key, _, _ in BARE_CHAINS),
                        [
                            "catalogflow, to the last Magento write",
                            f"{cf['products_per_s_last_write']:.1f}",
                            f"{cf['cpu_s_per_product'] * 1000:.1f}",
                            _requests(catalogflow_requests),
                        ],
                        [
                            "catalogflow, to Completed",
                            f"{cf['products_per_s_completed']:.1f}",
                            "",
                            "",
                        ],
                    ],
                ),
                f"catalogflow / bare with the same HTTP calls = "
                f"{results['ratio_to_bare_same_calls']} (target >= "
                f"{MIN_RATIO_TO_BARE_SAME_CALLS}); / bare + the issue's calls = "
                f"{results['ratio_to_bare_http']}; / hops only = "
                f"{results['ratio_to_bare_hops_only']}",
                f"replayed: {_requests(results['recorded_requests_per_product'])} per product; "
                f"not replayed: {sum(results['unattributed_requests'].values())} requests "
                "of the run about none of the products (by path in --json)",
                "",
            ]
        lines += [*cost_lines(cf), ""]
    if "continuous" in results:
        c = results["continuous"]
        lines += [
            f"continuous, {c['workers']} worker(s), {c['rate']}/s for {c['seconds']} s",
            table(
                ["published", "written", "p50 s", "p99 s", "max s", "written/s", "CPU ms/product"],
                [
                    [
                        str(c["published"]),
                        str(c["written"]),
                        _seconds(c["p50_s"]),
                        _seconds(c["p99_s"]),
                        _seconds(c["max_s"]),
                        f"{c['written_per_s']:.1f}",
                        f"{c['cpu_s_per_product'] * 1000:.1f}",
                    ]
                ],
            ),
            "",
        ]
    lines.append("targets missed: " + ("; ".join(missed) if missed else "none"))
    return "\n".join(lines)


def cost_lines(values: dict[str, Any]) -> list[str]:
    magento = ", ".join(f"{m} {n}" for m, n in values["magento_requests_per_product"].items())
    rows = [
        [t["topic"], f"{t['messages_per_product']:.2f}", str(t["bytes_per_product"])]
        for t in values["topics"]
    ]
    rows.append(
        [
            "total",
            f"{values['kafka_messages_per_product']:.2f}",
            str(values["kafka_bytes_per_product"]),
        ]
    )
    return [
        f"cost per product (catalogflow run: {values['run_counts']})",
        f"worker CPU: {values['cpu_s_per_product'] * 1000:.1f} ms; model calls: "
        f"{values['model_calls_per_product']}; Magento requests: {magento}",
        table(["topic", "messages/product", "bytes/product"], rows),
    ]


def _chain_row(chain: dict[str, Any]) -> list[str]:
    return [
        chain["label"],
        f"{chain['products_per_s']:.1f}",
        f"{chain['cpu_ms_per_product']:.1f}",
        _requests(chain["requests_per_product"]),
    ]


def _requests(counts: dict[str, float]) -> str:
    return ", ".join(f"{name} {n:g}" for name, n in sorted(counts.items())) or "none"


def _seconds(value: float | None) -> str:
    return "not written" if value is None else f"{value:.3f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    every = [header, *rows]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in every]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
