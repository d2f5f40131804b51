"""`catalogflow projector` and `catalogflow read-model rebuild`.

Exit codes as everywhere: 0 done, 1 failed (broker or database unreachable), 2 bad
usage or settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from types import FrameType

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from catalogflow.readmodel.projector import Projector
from catalogflow.readmodel.rebuild import RebuildSummary, rebuild
from catalogflow.readmodel.store import engine_for, open_read_model
from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings

EXIT_OK = 0


def add_readmodel_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``projector`` and ``read-model rebuild``."""
    projector = commands.add_parser(
        "projector",
        help="fold the event log into the read model until SIGTERM",
        description=(
            "Fold task events, run progress, moderation, decisions, sync results, dead "
            "letters, workflows and commands into the read model (read_model_url; "
            "default an SQLite file under data_dir). Resumes where the read model ends; "
            "runs until SIGTERM or Ctrl-C."
        ),
    )
    projector.add_argument("--loglevel", default="info", choices=["debug", "info", "warning"])
    projector.set_defaults(run=run_projector)

    read_model = commands.add_parser(
        "read-model",
        help="manage the read model",
        description="Manage the read model (a view of the topics, never the source of truth).",
    )
    actions = read_model.add_subparsers(dest="read_model_command", required=True, metavar="COMMAND")
    rebuild_parser = actions.add_parser(
        "rebuild",
        help="drop the read model and fold every topic again",
        description=(
            "Drop the read model and fold every topic again from its beginning up to the "
            "end offsets seen at the start, then exit. Stop the projector first."
        ),
    )
    rebuild_parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    rebuild_parser.set_defaults(run=run_rebuild)


def run_projector(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.load(args.config)
    ensure_topics(settings)
    with database_errors(settings):
        engine = open_read_model(settings)
        stop = threading.Event()
        with _stopped_by_signals(stop.set):
            Projector(settings, engine).run_until(stop)
    return EXIT_OK


def run_rebuild(args: argparse.Namespace) -> int:
    settings = Settings.load(args.config)
    with database_errors(settings):
        engine = engine_for(settings.read_model)
        progress = (lambda _: None) if args.json else (lambda line: print(line, file=sys.stderr))
        summary = rebuild(settings, engine, progress)
    if args.json:
        print(json.dumps(asdict(summary), sort_keys=True))
    else:
        _print_summary(summary, settings)
    return EXIT_OK


def _print_summary(summary: RebuildSummary, settings: Settings) -> None:
    total = sum(summary.records.values())
    print(f"rebuilt {_shown_url(settings)} from {total} records in {summary.seconds:.1f} s")
    for topic, count in sorted(summary.records.items()):
        print(f"  {topic:<22} {count:>9} records")
    for table, count in sorted(summary.rows.items()):
        print(f"  {table:<22} {count:>9} rows")
    if summary.unfoldable:
        print(f"  {summary.unfoldable} records could not be folded (see dead-letters)")


def _shown_url(settings: Settings) -> str:
    return make_url(settings.read_model).render_as_string(hide_password=True)


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """A database that cannot be reached or used is exit code 1 with one line, not a
    traceback; the URL is shown without its password."""
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise CatalogflowError(f"read model {_shown_url(settings)}: {first}") from None


@contextmanager
def _stopped_by_signals(stop: Callable[[], None]) -> Iterator[None]:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
