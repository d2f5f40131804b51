"""``catalogflow eval WORKFLOW --golden FILE``: the workflow's actions on a golden set,
through the step runner, writing nothing; tables on stdout (``--json`` for scripts),
``--save`` keeps the result, ``--baseline`` fails (exit 1) on a regression."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from catalogflow.dryrun import DryRun, SettingsContext, chain_up_to, dry_run
from catalogflow.evaluation.baseline import (
    DEFAULT_MARGIN,
    load_report,
    regressions,
    report_json,
)
from catalogflow.evaluation.golden import load_golden
from catalogflow.evaluation.scoring import Report, score, unscored_golden_fields
from catalogflow.streams.actions import load_registry
from catalogflow.streams.actions.builtin import load_workflow
from catalogflow.streams.errors import ConfigError
from catalogflow.streams.settings import Settings

EXIT_OK, EXIT_REGRESSION = 0, 1


def add_eval_command(commands: Any) -> None:
    parser = commands.add_parser(
        "eval",
        help="measure a workflow's actions on a golden set; writes nothing",
        description=(
            "Run a workflow's actions on the products of a golden file (expected values "
            "per field, null where the text supports none) through the same step runner "
            "as a run, writing nothing, and report per field and locale: accuracy, "
            "invented values, what the checks caught, what the moderation policy would "
            "have auto-approved, a reliability table with its calibration error, tokens "
            "and cost. Exit 1 when --baseline finds a regression."
        ),
    )
    parser.add_argument("workflow", type=Path, metavar="WORKFLOW", help="YAML definition")
    parser.add_argument("--golden", type=Path, required=True, metavar="FILE", help="golden JSONL")
    parser.add_argument("--limit", type=int, metavar="N", help="only the first N products")
    parser.add_argument("--action", metavar="ID", help="stop after this action")
    endpoint = parser.add_mutually_exclusive_group()
    endpoint.add_argument(
        "--simulator", action="store_true", help="call an in-process LLM simulator"
    )
    endpoint.add_argument(
        "--endpoint",
        metavar="URL",
        help="an OpenAI-compatible base URL, e.g. the one `catalogflow model start` prints",
    )
    parser.add_argument("--model", metavar="NAME", help="the model name at --endpoint")
    parser.add_argument("--save", type=Path, metavar="RESULT", help="write the result as JSON")
    parser.add_argument(
        "--baseline", type=Path, metavar="RESULT", help="compare with a saved result"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"accuracy drop counted as a regression (default {DEFAULT_MARGIN})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--allow-type", action="append", default=[], metavar="TYPE", help="a plugin action type"
    )
    parser.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if not 0 <= args.margin < 1:
        raise ConfigError(f"--margin must be between 0 and 1, got {args.margin}")
    if args.model and not args.endpoint:
        raise ConfigError("--model names the model at --endpoint; give --endpoint too")
    definition = load_workflow(args.workflow, args.allow_type)
    golden = load_golden(args.golden, args.limit)
    baseline = load_report(args.baseline) if args.baseline else None
    chain = chain_up_to(definition, args.action)
    unscored = unscored_golden_fields(chain, golden)
    if unscored:
        print(f"note: no action extracts {', '.join(unscored)}; not scored", file=sys.stderr)
    with _endpoint(Settings.load(args.config), args) as settings, _progress(len(golden)) as step:
        results = dry_run(load_registry(settings), chain, [g.product for g in golden], step)
    report = score(definition.id, chain, golden, results)
    data = report_json(report)
    if args.save:
        args.save.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    found = regressions(baseline, data, args.margin) if baseline is not None else []
    if args.json:
        print(json.dumps({**data, "regressions": [str(r) for r in found]}))
    else:
        print_report(report, _console())
        if baseline is not None:
            print(
                "regressions against the baseline:"
                if found
                else "no regression against the baseline"
            )
            for regression in found:
                print(f"  {regression}")
    return EXIT_REGRESSION if found else EXIT_OK


def _endpoint(settings: Settings, args: argparse.Namespace) -> SettingsContext:
    if args.endpoint:
        changes: dict[str, Any] = {"llm_base_url": args.endpoint, "llm_kind": "compatible"}
        if args.model:
            changes["llm_model"] = args.model
        return contextlib.nullcontext(settings.replace(**changes))
    if args.simulator:
        simulated: Callable[[Settings], SettingsContext] = args.simulated_llm
        return simulated(settings)
    return contextlib.nullcontext(settings)


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[DryRun], None]]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda result: None
        return
    columns = (TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("eval", total=total)
        yield lambda result: progress.advance(bar)


def _console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 140, highlight=False)


def print_report(report: Report, console: Console) -> None:
    models = ", ".join(report.models) or "no model call"
    console.print(f"{report.workflow_id} on {report.products} golden products ({models})")
    scored = Table(title="extracted values", title_justify="left")
    for column in (
        "field", "products", "accuracy", "missed", "wrong", "invented", "caught",
        "invented auto-approved", "auto-approved", "wrong auto-approved", "failed",
    ):  # fmt: skip
        scored.add_column(column, justify="left" if column == "field" else "right")
    texts = Table(title="generated fields", title_justify="left")
    for column in ("field", "products", "produced", "flagged by checks", "auto-approved", "failed"):
        texts.add_column(column, justify="left" if column == "field" else "right")
    for f in report.fields:
        if f.scored:
            scored.add_row(
                f.label, str(f.products), f"{f.accuracy or 0:.1%}", str(f.missed), str(f.wrong),
                str(f.invented), str(f.caught), str(f.invented_auto_approved),
                str(f.auto_approved), str(f.wrong_auto_approved), str(f.failed),
            )  # fmt: skip
        else:
            texts.add_row(
                f.label, str(f.products), str(f.produced), str(f.flagged),
                str(f.auto_approved), str(f.failed),
            )  # fmt: skip
    console.print(scored)
    if texts.row_count:
        console.print(texts)
    table = Table(title="reliability (extracted values with a confidence)", title_justify="left")
    for column in ("confidence", "values", "mean confidence", "accuracy"):
        table.add_column(column, justify="right")
    for b in report.reliability:
        table.add_row(
            f"{b.lower:.1f}-{b.upper:.1f}", str(b.values), f"{b.mean_confidence:.2f}",
            f"{b.accuracy:.1%}",
        )  # fmt: skip
    console.print(table)
    ece = "-" if report.ece is None else f"{report.ece:.3f}"
    console.print(f"expected calibration error: {ece}")
    for failure, products in report.failures.items():
        console.print(f"failed: {failure} on {products} products")
    per_1000 = report.cost / max(report.products, 1) * 1000
    console.print(
        f"tokens: {report.input_tokens:,} input, {report.output_tokens:,} output; "
        f"cost {report.cost:.4f} ({per_1000:.4f} per 1,000 products)"
    )
