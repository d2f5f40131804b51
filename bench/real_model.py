"""The real local model's speed on this machine: the seed workflow's three actions on
SmolLM2-135M-Instruct under llama.cpp's server (``catalogflow model``), one product at a
time through the dry-run step runner (the same step runner as a worker; nothing is
written, no broker). Reports products per minute and the server's completion tokens
per second (usage.completion_tokens over the wall time of the calls).

    .venv/bin/python -m bench.real_model --products 10
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.localbroker.model import MODEL_ALIAS, LocalModel, ModelConfig
from catalogflow.streams.actions import load_registry
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.settings import Settings

from catalogflow.dryrun import dry_run, fold, matching

SEED_FILE = Path(__file__).resolve().parent.parent / "examples" / "dry-cat-food.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10, help="matching products (10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    definition = load_workflow(SEED_FILE)
    products = matching(definition, fold(sample_changes(args.products * 4)))[: args.products]
    with tempfile.TemporaryDirectory() as data:
        server = LocalModel(ModelConfig(data_dir=Path(data)), progress=print)
        url = server.start(timeout=300)
        try:
            settings = Settings.load(environ={}).replace(
                llm_base_url=url, llm_kind="compatible", llm_model=MODEL_ALIAS, llm_timeout=300.0
            )
            registry = load_registry(settings)
            started = time.monotonic()
            results = dry_run(registry, definition.actions, products)
            seconds = time.monotonic() - started
        finally:
            server.stop()
    outputs = [o for r in results for o in r["outputs"]]
    completion = sum(o["output_tokens"] for o in outputs)
    prompt = sum(o["input_tokens"] for o in outputs)
    figures = {
        "products": len(products),
        "seconds": round(seconds, 1),
        "products_per_minute": round(len(products) / seconds * 60, 2),
        "model_calls": sum(1 for o in outputs if o["input_tokens"]),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "completion_tokens_per_second": round(completion / seconds, 1),
        "products_with_errors": sum(1 for r in results if r["errors"]),
    }
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
