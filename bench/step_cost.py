"""Step-cost benchmark: CPU milliseconds per step of each seed action on the model-call path.

The three actions of the seed workflow (``examples/dry-cat-food.yaml``: attribute
extraction, content enrichment, translation) run through the step runner
(:func:`catalogflow.streams.steps.run_step`) over N sample "Dry Cat Food" products,
one product and one step at a time, with the real ``ClientPool``/``LLMClient`` (the
openai client) against the LLM simulator at zero latency.

The simulator runs in a **subprocess** (what ``catalogflow simulator llm`` runs), so
``time.process_time`` here counts this process alone: the step runner, the action, the
prompt, the openai client, the limiter — not the simulator's own CPU. Waiting for the
answer costs no CPU, so the figure is what a worker spends per step.

The first ``--warmup`` products are run but not counted (client creation, imports,
first-call caches). ``--profile`` adds a cProfile of the counted steps (top 25).

    .venv/bin/python -m bench.step_cost --help
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SEED_FILE = Path(__file__).resolve().parent.parent / "examples" / "dry-cat-food.yaml"
CATEGORY = "Pet Food/Cat/Dry Cat Food"  # every 4th sample product
PROFILE_LINES = 25
#: The subprocess: what ``catalogflow simulator llm --port PORT`` runs, defaults otherwise.
SERVE_SIMULATOR = """
import argparse, sys
from catalogflow.testbench.llm.simulator import add_simulator_commands
parser = argparse.ArgumentParser()
add_simulator_commands(parser.add_subparsers())
args = parser.parse_args(["simulator", "llm", "--port", sys.argv[1]])
sys.exit(args.run(args))
"""
#: Appended to descriptions with ``--ambiguous``: more than one allowed value stated.
AMBIGUOUS = "<p>Also in our range: Tuna and Beef recipes, for Kitten and Senior cats.</p>"


@dataclass
class ActionCost:
    """What the counted steps of one action cost."""

    action: str
    steps: int
    model_calls: int
    cpu_ms_per_step: float
    cpu_ms_per_call: float | None


@contextmanager
def simulator_process() -> Iterator[str]:
    """``catalogflow simulator llm`` on a free port in a subprocess; its base URL."""
    from catalogflow.localbroker.launcher import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SIMULATOR, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the LLM simulator exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the LLM simulator did not start within 30 s")


def sample_products(count: int, ambiguous: bool) -> list[Any]:
    """``count`` sample products of the seed workflow's category; ``ambiguous``: their
    descriptions name a second flavour and life stage, so the extraction's
    deterministic pre-pass cannot decide and the model is asked."""
    from catalogflow.connectors.sample_catalog import sample_changes
    from catalogflow.streams.products import apply_change

    changes = (c for c in sample_changes(count * 4) if c["categories"] == [CATEGORY])
    products = [apply_change(None, c) for c in changes][:count]
    if ambiguous:
        for product in products:
            for value in product["values"]:
                if value["attribute"] == "description":
                    value["value"] = f"{value['value']} {AMBIGUOUS}"
    return products


async def measure(
    url: str, products: list[Any], warmup: int, profiler: cProfile.Profile | None
) -> list[ActionCost]:
    """Every product through the seed chain; CPU and model calls per action."""
    from catalogflow.connectors.llm.provider import ClientPool, ModelEndpoint
    from catalogflow.streams.actions.builtin import load_workflow
    from catalogflow.streams.actions.enrichment import ContentEnrichment
    from catalogflow.streams.actions.extraction import AttributeExtraction
    from catalogflow.streams.actions.model import ModelAction
    from catalogflow.streams.actions.translation import Translation
    from catalogflow.streams.records import ActionOutput
    from catalogflow.streams.steps import Failed, run_step

    endpoint = ModelEndpoint(
        name="default", model="gpt-4o-mini", base_url=f"{url}/v1", kind="compatible"
    )
    pool = ClientPool()
    client = pool.get(endpoint)
    kinds: dict[str, ModelAction] = {
        cls.type: cls(pool, endpoint)
        for cls in (AttributeExtraction, ContentEnrichment, Translation)
    }
    chain = [(spec, kinds[spec.type]) for spec in load_workflow(SEED_FILE).actions]
    cpu = {spec.id: 0.0 for spec, _ in chain}
    calls = {spec.id: 0 for spec, _ in chain}
    try:
        for index, product in enumerate(products):
            counted = index >= warmup
            outputs: list[ActionOutput] = []
            for spec, action in chain:
                requests = client.stats.requests
                if counted and profiler is not None:
                    profiler.enable()
                started = time.process_time()
                step = await run_step(action, spec, product, previous_outputs=outputs)
                spent = time.process_time() - started
                if counted and profiler is not None:
                    profiler.disable()
                if isinstance(step, Failed):
                    raise SystemExit(f"{spec.id} failed on {product['sku']}: {step.failure}")
                outputs.append(step.output)
                if counted:
                    cpu[spec.id] += spent
                    calls[spec.id] += client.stats.requests - requests
    finally:
        await pool.aclose()
    steps = len(products) - warmup
    return [
        ActionCost(
            action=f"{spec.id} ({spec.type})",
            steps=steps,
            model_calls=calls[spec.id],
            cpu_ms_per_step=1000 * cpu[spec.id] / steps,
            cpu_ms_per_call=1000 * cpu[spec.id] / calls[spec.id] if calls[spec.id] else None,
        )
        for spec, _ in chain
    ]


def print_table(costs: list[ActionCost]) -> None:
    print(f"{'action':<36} {'steps':>6} {'calls':>6} {'ms CPU/step':>12} {'ms CPU/call':>12}")
    for cost in costs:
        per_call = f"{cost.cpu_ms_per_call:.2f}" if cost.cpu_ms_per_call is not None else "-"
        print(
            f"{cost.action:<36} {cost.steps:>6} {cost.model_calls:>6} "
            f"{cost.cpu_ms_per_step:>12.2f} {per_call:>12}"
        )
    total = sum(c.cpu_ms_per_step for c in costs)
    print(f"{'all three steps (one product)':<36} {'':>6} {'':>6} {total:>12.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.step_cost",
        description="CPU ms per step of the seed actions (run_step, real openai client, "
        "LLM simulator at zero latency in a subprocess, so its CPU is not counted).",
    )
    parser.add_argument("--products", type=int, default=200, help="counted products")
    parser.add_argument("--warmup", type=int, default=10, help="products run but not counted")
    parser.add_argument(
        "--ambiguous",
        action="store_true",
        help="descriptions that state two flavours and life stages, so the extraction "
        "asks the model (with the sample texts its pre-pass decides alone)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile top 25 of the steps")
    parser.add_argument(
        "--sort", default="tottime", choices=("tottime", "cumulative"), help="profile order"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    args = parser.parse_args(argv)
    if args.products < 1 or args.warmup < 0:
        parser.error("--products must be at least 1 and --warmup at least 0")
    products = sample_products(args.products + args.warmup, args.ambiguous)
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    with simulator_process() as url:
        costs = asyncio.run(measure(url, products, args.warmup, profiler))
    print(
        f"{len(products) - args.warmup} products counted after {args.warmup} warm-up; "
        "simulator CPU not included (subprocess)"
    )
    print_table(costs)
    if profiler is not None:
        print()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(PROFILE_LINES)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(c) for c in costs], indent=2) + "\n")


if __name__ == "__main__":
    main()
