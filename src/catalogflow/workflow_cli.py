"""``catalogflow workflow validate FILE...``: check definitions and count live matches.

Exit codes: 0 every file is valid, 2 at least one is invalid, 1 another failure. The
live count reads the products table's compacted changelog from the beginning up to
the current end offsets, without a consumer group's commits, and never changes the
exit code: a missing broker only skips it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from catalogflow.streams.definitions import DefinitionError, WorkflowDefinition, load_definition
from catalogflow.streams.reader import (
    PROBE_TIMEOUT_S,
    PROGRESS_EVERY,
    BrokerUnavailable,
    TopicMissing,
    read_latest,
)
from catalogflow.streams.rules import matches
from catalogflow.streams.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def add_workflow_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``workflow validate FILE [FILE...] [--count|--no-count]``."""
    workflow = subparsers.add_parser("workflow", help="check and inspect workflow definitions")
    actions = workflow.add_subparsers(dest="workflow_command", required=True, metavar="COMMAND")
    validate = actions.add_parser(
        "validate", help="validate definition files and count the products they match now"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="YAML definitions")
    validate.add_argument(
        "--count",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count live matching products (default: when a broker answers within "
        f"{PROBE_TIMEOUT_S:g} s)",
    )
    validate.set_defaults(run=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    valid: list[tuple[Path, WorkflowDefinition]] = []
    invalid = 0
    for path in args.files:
        try:
            definition = load_definition(path)
        except DefinitionError as exc:
            invalid += 1
            print(exc)
            continue
        valid.append((path, definition))
        chain = " → ".join(a.id for a in definition.actions)
        count = len(definition.actions)
        print(
            f"{path}: ok — {definition.id} ({definition.mode}), "
            f"{count} action{'s' if count != 1 else ''}: {chain}"
        )
    if valid and args.count is not False:
        _print_live_counts(Settings.load(args.config), valid)
    return EXIT_INVALID if invalid else EXIT_OK


def _print_live_counts(
    settings: Settings, definitions: Sequence[tuple[Path, WorkflowDefinition]]
) -> None:
    topic = products_changelog(settings)
    try:
        snapshots = read_latest(
            settings,
            topic,
            "ProductSnapshot",
            progress=_stderr_progress("read", "changelog records"),
            missing_ok=False,
        ).values()
    except BrokerUnavailable:
        print(f"live count: skipped (no broker at {settings.bootstrap_servers})")
        return
    except TopicMissing:
        print(f"live count: 0 products (topic {topic} does not exist yet; has a worker run?)")
        return
    total, counts = count_matches(
        [d for _, d in definitions], snapshots, progress=_stderr_progress("checked", "products")
    )
    for (path, definition), count in zip(definitions, counts, strict=True):
        print(f"{path}: live count: {count} of {total} products match {definition.id}")


def products_changelog(settings: Settings) -> str:
    """The compacted changelog topic of the worker's products table."""
    return f"{settings.app_id}-products-changelog"


def count_matches(
    definitions: Sequence[WorkflowDefinition],
    snapshots: Iterable[dict[str, Any]],
    progress: Callable[[int], None] = lambda _: None,
) -> tuple[int, list[int]]:
    """Return (products seen, matching products per definition). Deleted products are
    not counted as products and never match."""
    total = 0
    counts = [0] * len(definitions)
    for snapshot in snapshots:
        if snapshot.get("deleted"):
            continue
        total += 1
        for i, definition in enumerate(definitions):
            if matches(definition.trigger, snapshot):
                counts[i] += 1
        if total % PROGRESS_EVERY == 0:
            progress(total)
    return total, counts


def _stderr_progress(verb: str, what: str, stream: TextIO | None = None) -> Callable[[int], None]:
    def report(count: int) -> None:
        print(f"  {verb} {count} {what} …", file=stream or sys.stderr, flush=True)

    return report
