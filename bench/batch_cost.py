"""The seed workflow's cost per 1,000 products, live against the Batch API, at the
configured prices (``llm_price_*``, ``llm_batch_price_factor``; ``--config FILE``).

Two figures each way: ``workflow estimate``'s (no model: rendered prompts of the sample
catalog's Dry Cat Food, 80 output tokens a field), and a measured one — the seed chain
on the LLM simulator (in this process, no broker) over ``--products`` products, every
product at once and each product's steps in order, as an action agent runs a batch of
tasks: once with live calls, once with every action on ``settings.model: {batch: true}``.
The measured cost is what the outputs recorded, as a run adds it up.

    .venv/bin/python -m bench.batch_cost --products 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from catalogflow.connectors.llm.provider import ClientPool
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions import ActionRegistry, load_registry
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.definitions import WorkflowDefinition
from catalogflow.streams.records import ActionOutput, ProductSnapshot
from catalogflow.streams.settings import Settings
from catalogflow.streams.steps import Failed, run_step
from catalogflow.testbench.llm.simulator import SimulatorConfig, SimulatorThread

from catalogflow.dryrun import estimate, fold, matching

SEED_FILE = Path(__file__).resolve().parent.parent / "examples" / "dry-cat-food.yaml"
#: The Batch API settings of the measured batch run: short waits, as on the simulator.
BATCH = {"batch": True, "batch_linger_s": 0.2, "batch_poll_s": 0.1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100, help="measured products (100)")
    parser.add_argument(
        "--catalog", type=int, default=4000, help="sample catalog for the estimate (4000)"
    )
    parser.add_argument("--config", type=Path, help="settings file (the prices)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    settings = Settings.load(args.config, environ={})
    live = load_workflow(SEED_FILE)
    batch = batched(live)

    catalog = matching(live, fold(sample_changes(args.catalog)))
    found = estimate(load_registry(settings, ClientPool()), live, catalog)
    per = 1000 / max(found.products, 1)
    products = matching(live, fold(sample_changes(args.products * 4)))[: args.products]
    with SimulatorThread(SimulatorConfig(batch_delay_s=0.5)) as sim:
        simulated = settings.replace(llm_base_url=f"{sim.url}/v1", llm_kind="compatible")
        live_run = asyncio.run(measure(simulated, live, products))
        batch_run = asyncio.run(measure(simulated, batch, products))
        stats = sim.stats()
    figures = {
        "prices": [settings.llm_price_input, settings.llm_price_output],
        "batch_price_factor": settings.llm_batch_price_factor,
        "estimate_products": found.products,
        "estimate_live_per_1000": round(found.cost * per, 4),
        "estimate_batch_per_1000": round(found.batch_cost * per, 4),
        "measured_products": len(products),
        "measured_live_per_1000": round(live_run["cost"] * 1000 / len(products), 4),
        "measured_batch_per_1000": round(batch_run["cost"] * 1000 / len(products), 4),
        "prompt_tokens_per_product": round(live_run["input_tokens"] / len(products), 1),
        "completion_tokens_per_product": round(live_run["output_tokens"] / len(products), 1),
        "live_calls": stats["completions"],
        "batch_lines": stats["batch_lines"],
        "batches": stats["batches"],
        "live_seconds": live_run["seconds"],
        "batch_seconds": batch_run["seconds"],
        "errors": live_run["errors"] + batch_run["errors"],
    }
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    return 0


def batched(definition: WorkflowDefinition) -> WorkflowDefinition:
    """``definition`` with every action sent through the Batch API."""
    document = definition.to_dict()
    document["id"] = f"{definition.id}-batch"
    for action in document["actions"]:
        action["settings"] = {**action["settings"], "model": BATCH}
    return WorkflowDefinition.from_dict(document)


async def measure(
    settings: Settings, definition: WorkflowDefinition, products: list[ProductSnapshot]
) -> dict[str, Any]:
    """Every product through the chain at once; the cost and tokens the outputs
    recorded, the products that failed, and the wall time."""
    pool = ClientPool()
    registry = load_registry(settings, pool)
    started = time.monotonic()
    try:
        chains = await asyncio.gather(*(chain(registry, definition, p) for p in products))
    finally:
        await pool.aclose()
    outputs = [o for done, _ in chains for o in done]
    return {
        "cost": sum(o["cost"] for o in outputs),
        "input_tokens": sum(o["input_tokens"] for o in outputs),
        "output_tokens": sum(o["output_tokens"] for o in outputs),
        "errors": sum(1 for _, failed in chains if failed),
        "seconds": round(time.monotonic() - started, 1),
    }


async def chain(
    registry: ActionRegistry, definition: WorkflowDefinition, product: ProductSnapshot
) -> tuple[list[ActionOutput], bool]:
    """One product's steps in order, as its task goes (stopping at a failure)."""
    outputs: list[ActionOutput] = []
    for spec in definition.actions:
        action = registry.get(spec.type)
        assert action is not None, spec.type
        step = await run_step(action, spec, product, previous_outputs=outputs)
        if isinstance(step, Failed):
            return outputs, True
        outputs.append(step.output)
    return outputs, False


if __name__ == "__main__":
    sys.exit(main())
