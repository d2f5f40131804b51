"""``workflow dry-run`` and ``workflow estimate``: try a workflow on a few products
before a run, and see what the whole run would cost.

A dry run calls the model for real (against the configured endpoint, or an
in-process simulator with ``--simulator``) but writes nothing: no topic, no table,
no cache. The estimate calls no model at all: it renders the prompts for sample
products, counts their tokens, and multiplies by the matching products and prices —
both the live prices and the Batch API's (``batch_price_factor`` times them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from catalogflow.connectors.llm.provider import estimate_tokens
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.actions import ActionInput, ActionRegistry, load_registry
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.actions.model import ModelAction, endpoint_for
from catalogflow.streams.actions.prompts import context_for, product_block
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.definitions import ActionSpec, WorkflowDefinition
from catalogflow.streams.errors import CatalogflowError, ConfigError
from catalogflow.streams.products import apply_change, validate_change
from catalogflow.streams.reader import BrokerUnavailable, read_latest
from catalogflow.streams.records import ActionOutput, ProductSnapshot
from catalogflow.streams.rules import matches
from catalogflow.streams.scope import out_of_scope
from catalogflow.streams.settings import Settings
from catalogflow.streams.steps import Failed, run_step
from catalogflow.streams.topics import changelog_topic

#: Expected output tokens per produced field, for estimates.
OUTPUT_TOKENS_PER_FIELD = 80


class DryRun(TypedDict):
    """What one product's dry run shows (``--json`` prints it as it is)."""

    sku: str
    outputs: list[ActionOutput]
    errors: list[str]
    tokens: int
    cost: float


def add_dryrun_commands(actions: Any) -> None:
    dry = actions.add_parser(
        "dry-run",
        help="try a workflow on a few products; writes nothing",
        description="Try a workflow (or one action) on a few products; writes nothing.",
    )
    _common(dry)
    dry.add_argument("--sample", type=int, default=3, help="products to try (default 3)")
    dry.add_argument("--action", metavar="ID", help="only this action (earlier ones run too)")
    dry.add_argument(
        "--simulator",
        action="store_true",
        help="call an in-process LLM simulator instead of the configured endpoint",
    )
    dry.add_argument("--json", action="store_true", help="print results as JSON lines")
    dry.set_defaults(run=run_dry_run)

    estimate = actions.add_parser(
        "estimate",
        help="estimate a full run's tokens and cost",
        description="Estimate a full run's tokens and cost; calls no model.",
    )
    _common(estimate)
    estimate.set_defaults(run=run_estimate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="YAML definition")
    parser.add_argument(
        "--products",
        type=Path,
        metavar="JSONL",
        help="ProductChanged records, one JSON object per line (default: the live catalog)",
    )
    parser.add_argument(
        "--sample-catalog",
        type=int,
        metavar="N",
        help="use the generated N-product pet-food catalog instead of the live one",
    )
    parser.add_argument(
        "--allow-type",
        action="append",
        default=[],
        metavar="TYPE",
        help="accept an action type provided by a plugin (repeatable)",
    )


def run_dry_run(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    definition = load_workflow(args.file, args.allow_type)
    if args.sample < 1:
        raise ConfigError(f"--sample must be at least 1, got {args.sample}")
    products = _matching(settings, definition, args)
    chain = chain_up_to(definition, args.action)
    with _endpoint(settings, args) as settings:
        registry = load_registry(settings)
        results = dry_run(registry, chain, products[: args.sample])
    total_cost = sum(r["cost"] for r in results)
    for result in results:
        print(json.dumps(result, default=str) if args.json else _describe(result))
    tried = max(len(results), 1)
    print(
        f"tried {len(results)} of {len(products)} matching products: "
        f"{sum(r['tokens'] for r in results)} tokens, cost {total_cost:.6f}; "
        f"projected full run: {total_cost / tried * len(products):.4f}"
    )
    return 0 if all(not r["errors"] for r in results) else 1


def run_estimate(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    definition = load_workflow(args.file, args.allow_type)
    products = _matching(settings, definition, args)
    registry = load_registry(settings)
    found = estimate(registry, definition, products)
    batched = [spec.id for spec in definition.actions if _batched(registry, spec)]
    uses = f"; this workflow sends {', '.join(batched)} through the Batch API" if batched else ""
    print(
        f"{definition.id}: {found.products} matching products, about {found.input_tokens:,.0f} "
        f"input and {found.output_tokens:,.0f} output tokens, estimated cost {found.cost:.4f} "
        f"with live calls, {found.batch_cost:.4f} through the Batch API{uses} "
        "(cached answers would make it less)"
    )
    return 0


def _batched(registry: ActionRegistry, spec: ActionSpec) -> bool:
    """Whether ``spec``'s model calls go through the Batch API."""
    action = registry.get(spec.type)
    return (
        isinstance(action, ModelAction)
        and endpoint_for(action.default_endpoint, spec.settings).batch
    )


@dataclass(frozen=True)
class Estimate:
    """What a whole run over ``products`` matching products would cost, before caching:
    ``cost`` with every model call live, ``batch_cost`` with every one through the
    Batch API (the same tokens at the batch prices)."""

    products: int
    input_tokens: float
    output_tokens: float
    cost: float
    batch_cost: float = 0.0


def estimate(
    registry: ActionRegistry, definition: WorkflowDefinition, products: Sequence[ProductSnapshot]
) -> Estimate:
    """Rendered prompts of up to 20 sample products per step, times the products in the
    step's scope, at the endpoint's prices (the console shows the same figure)."""
    input_tokens = output_tokens = 0.0
    cost = batch_cost = 0.0
    for spec in definition.actions:
        action = registry.get(spec.type)
        # The step runner skips a product outside the step's scope before any model call.
        in_scope = [p for p in products if out_of_scope(spec.scope, p) is None]
        sample = in_scope[:20]
        if not isinstance(action, ModelAction) or not sample:
            continue
        endpoint = endpoint_for(action.default_endpoint, spec.settings)
        rendered = [estimate_tokens(" ".join(_render(action, spec, product))) for product in sample]
        per_product_in = sum(rendered) / len(rendered)
        per_product_out = OUTPUT_TOKENS_PER_FIELD * _field_count(spec)
        input_tokens += per_product_in * len(in_scope)
        output_tokens += per_product_out * len(in_scope)
        step = (
            (
                per_product_in * endpoint.price_input_per_million
                + per_product_out * endpoint.price_output_per_million
            )
            * len(in_scope)
            / 1_000_000
        )
        cost += step
        batch_cost += step * endpoint.batch_price_factor
    return Estimate(len(products), input_tokens, output_tokens, cost, batch_cost)


def live_products(settings: Settings) -> list[ProductSnapshot]:
    """The catalog as the workers hold it now (the products changelog), without the
    deleted products; a broker that does not answer is a CatalogflowError."""
    rows = read_latest(settings, changelog_topic(settings, "products"), ProductSnapshot)
    return [snapshot for snapshot in rows.values() if not snapshot["deleted"]]


def matching(
    definition: WorkflowDefinition, snapshots: Iterable[ProductSnapshot]
) -> list[ProductSnapshot]:
    """The products the trigger selects, by SKU."""
    return sorted((s for s in snapshots if matches(definition.trigger, s)), key=lambda s: s["sku"])


def dry_run(
    registry: ActionRegistry,
    chain: Sequence[ActionSpec],
    products: Sequence[ProductSnapshot],
    on_product: Callable[[DryRun], None] | None = None,
) -> list[DryRun]:
    """Each product through ``chain`` as a task would go; writes nothing. ``on_product``
    sees each product's result as it is done (progress for long runs)."""
    return asyncio.run(_dry_run(registry, chain, products, on_product))


def _render(action: ModelAction, spec: ActionSpec, product: ProductSnapshot) -> tuple[str, str]:
    request = ActionInput(
        sku=product["sku"],
        product=product,
        action_id=spec.id,
        settings=spec.settings,
        previous_outputs=(),
        reads=spec.reads,
    )
    context = context_for(request, spec.reads)
    context["product_block"] = product_block(context)
    context.setdefault(
        "fields", [{"name": f, "max_length": 0} for f in spec.settings.get("fields", [])]
    )
    context.setdefault("locale", (spec.settings.get("locales") or [""])[0])
    with contextlib.suppress(Exception):
        return action.prompt(spec.settings).render(context)
    return ("", product_block(context))


def _field_count(spec: ActionSpec) -> int:
    settings = spec.settings
    if spec.type == "attribute_extraction":
        return len(settings.get("attributes", []))
    if spec.type == "translation":
        return len(settings.get("fields", [])) * len(settings.get("locales", []))
    return max(len(settings.get("fields", [])), 1)


async def _dry_run(
    registry: ActionRegistry,
    chain: Sequence[ActionSpec],
    products: Sequence[ProductSnapshot],
    on_product: Callable[[DryRun], None] | None,
) -> list[DryRun]:
    """Each product through the chain's steps as a task would go (the same step runner
    as the action agents), stopping at its first failure."""
    results: list[DryRun] = []
    for product in products:
        outputs: list[ActionOutput] = []
        errors: list[str] = []
        for spec in chain:
            action = registry.get(spec.type)
            if action is None:
                errors.append(f"{spec.id}: action type {spec.type} is not installed")
                break
            step = await run_step(action, spec, product, previous_outputs=outputs)
            if isinstance(step, Failed):
                errors.append(f"{spec.id}: {step.failure.category}: {step.failure.message}")
                break
            outputs.append(step.output)
        result: DryRun = {
            "sku": product["sku"],
            "outputs": outputs,
            "errors": errors,
            "tokens": sum(o["input_tokens"] + o["output_tokens"] for o in outputs),
            "cost": sum(o["cost"] for o in outputs),
        }
        results.append(result)
        if on_product is not None:
            on_product(result)
    return results


def _describe(result: DryRun) -> str:
    lines = [f"{result['sku']}: {result['tokens']} tokens, cost {result['cost']:.6f}"]
    for output in result["outputs"]:
        if output["skipped"]:
            lines.append(f"  {output['action_id']}: {output['skipped']}")
        for field in output["fields"]:
            name = field["field"] + (f"@{field['locale']}" if field["locale"] else "")
            confidence = "-" if field["confidence"] is None else f"{field['confidence']:.2f}"
            review = "" if field["approved"] else "  [needs review]"
            lines.append(
                f"  {output['action_id']}/{name} = {field['value']!r}"
                f"  (confidence {confidence}){review}"
            )
            if field["reasoning"]:
                lines.append(f"      why: {field['reasoning']}")
    lines.extend(f"  ERROR {error}" for error in result["errors"])
    return "\n".join(lines)


def chain_up_to(definition: WorkflowDefinition, action_id: str | None) -> list[ActionSpec]:
    ids = [a.id for a in definition.actions]
    if action_id is None:
        return list(definition.actions)
    if action_id not in ids:
        raise ConfigError(f"--action {action_id!r} is not in {definition.id}: {', '.join(ids)}")
    return list(definition.actions[: ids.index(action_id) + 1])


def _matching(
    settings: Settings, definition: WorkflowDefinition, args: argparse.Namespace
) -> list[ProductSnapshot]:
    return matching(definition, _snapshots(settings, args))


def _snapshots(settings: Settings, args: argparse.Namespace) -> Iterator[ProductSnapshot]:
    if args.sample_catalog:
        yield from fold(sample_changes(args.sample_catalog))
        return
    if args.products:
        try:
            lines = args.products.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise ConfigError(f"cannot read {args.products}: {reason}") from exc
        changes = []
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    changes.append(json.loads(line))
                except ValueError as exc:
                    raise ConfigError(f"{args.products}:{number}: not JSON: {exc}") from exc
                _check_change(changes[-1], f"{args.products}:{number}")
        yield from fold(changes)
        return
    try:
        rows = read_latest(settings, changelog_topic(settings, "products"), ProductSnapshot)
    except BrokerUnavailable as exc:
        raise CatalogflowError(
            f"{exc}; give --products FILE or --sample-catalog N to try it without a broker"
        ) from exc
    yield from rows.values()


def _check_change(change: Any, where: str) -> None:
    """A line of ``--products`` must be a ProductChanged record (its timestamp may be
    left out): one that is not is a usage error naming its line and field, not a
    traceback from deep inside the fold. The worker would dead-letter it too."""
    if not isinstance(change, dict):
        raise ConfigError(f"{where}: expected a ProductChanged object, got JSON {change!r:.60}")
    record = {**change, "source_timestamp": datetime.now(UTC)}  # the fold only copies it
    try:
        SchemaStore.shipped().encode("ProductChanged", record)
        validate_change(record)  # type: ignore[arg-type]  # encodes, so it has every field
    except CatalogflowError as exc:
        raise ConfigError(f"{where}: not a usable ProductChanged record: {exc}") from None


def fold(changes: Iterable[Any]) -> Iterator[ProductSnapshot]:
    snapshots: dict[str, ProductSnapshot] = {}
    for change in changes:
        change.setdefault("source_timestamp", None)
        snapshots[change["sku"]] = apply_change(snapshots.get(change["sku"]), change)
    yield from snapshots.values()


SettingsContext = contextlib.AbstractContextManager[Settings]


def _endpoint(settings: Settings, args: argparse.Namespace) -> SettingsContext:
    """The configured endpoint, or with ``--simulator`` the test bench's LLM simulator,
    which the CLI hands over as ``args.simulated_llm`` (product code never imports the bench).
    """
    if not args.simulator:
        return contextlib.nullcontext(settings)
    simulated: Callable[[Settings], SettingsContext] = args.simulated_llm
    return simulated(settings)
