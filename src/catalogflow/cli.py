"""The ``catalogflow`` command. Exit codes: 0 done, 1 failed, 2 bad usage or settings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from catalogflow import __version__
from catalogflow.streams.definitions import DefinitionError
from catalogflow.streams.errors import CatalogflowError, ConfigError
from catalogflow.streams.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except DefinitionError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"catalogflow: settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CatalogflowError as exc:
        print(f"catalogflow: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    from catalogflow.api.cli import add_api_commands
    from catalogflow.calibrate import add_calibrate_command
    from catalogflow.connectors.magento.pull import add_magento_commands
    from catalogflow.dlq_cli import add_dlq_commands
    from catalogflow.evaluation.cli import add_eval_command
    from catalogflow.feed_cli import add_feed_commands
    from catalogflow.history_cli import add_history_commands
    from catalogflow.importer import add_import_command
    from catalogflow.localbroker.cli import add_broker_commands
    from catalogflow.localbroker.model_cli import add_model_commands
    from catalogflow.moderation_cli import add_moderation_commands
    from catalogflow.readmodel.cli import add_readmodel_commands

    # The one place product code reaches into the test bench: it offers the bench's
    # commands (`demo`, `simulator`) and the LLM simulator behind `workflow dry-run
    # --simulator` (tests/unit/test_import_boundaries.py names this exception).
    from catalogflow.testbench.commands import add_testbench_commands, simulated_llm
    from catalogflow.workflow_cli import add_workflow_commands

    parser = argparse.ArgumentParser(
        prog="catalogflow",
        description="AI workflows over an e-commerce catalog, on Apache Kafka.",
    )
    parser.add_argument("--version", action="version", version=f"catalogflow {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="YAML settings file (CATALOGFLOW_* environment variables override it)",
    )
    parser.set_defaults(simulated_llm=simulated_llm)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a stream worker (all agents)")
    worker.add_argument("--loglevel", default="info", choices=["debug", "info", "warning"])
    worker.set_defaults(run=_run_worker)

    topics = commands.add_parser("topics", help="create catalogflow's topics if missing")
    topics.set_defaults(run=_run_topics)

    sample = commands.add_parser(
        "sample-catalog", help="publish a generated pet-food catalog to product-changes"
    )
    sample.add_argument("--count", type=int, default=1000, help="products (default 1000)")
    sample.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    sample.set_defaults(run=_run_sample)

    add_testbench_commands(commands)
    add_broker_commands(commands)
    add_model_commands(commands)
    add_workflow_commands(commands)
    add_moderation_commands(commands)
    add_import_command(commands)
    add_magento_commands(commands)
    add_feed_commands(commands)
    add_readmodel_commands(commands)
    add_api_commands(commands)
    add_history_commands(commands)
    add_dlq_commands(commands)
    add_eval_command(commands)
    add_calibrate_command(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.config)


def _run_worker(args: argparse.Namespace) -> NoReturn:
    from catalogflow.streams.admin import ensure_topics
    from catalogflow.streams.ready import prepare_cluster
    from catalogflow.worker import CatalogflowWorker, build_worker

    settings = _settings(args)
    topology = build_worker(settings)
    ensure_topics(settings, topology.registry.types, progress=print)
    prepare_cluster(topology)  # no start-up race with faust's own topics (streams/ready.py)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = CatalogflowWorker(topology, loglevel=args.loglevel)
    worker.execute_from_commandline()  # never returns: exits when the worker stops


def _run_topics(args: argparse.Namespace) -> int:
    from catalogflow.streams.admin import ensure_topics

    settings = _settings(args)
    created = ensure_topics(settings, progress=print)
    print(f"{len(created)} topics created, the rest already existed ({settings.bootstrap_servers})")
    return EXIT_OK


def _run_sample(args: argparse.Namespace) -> int:
    from catalogflow.connectors.sample_catalog import publish_sample

    settings = _settings(args)
    sent = publish_sample(settings, args.count, args.seed)
    print(f"published {sent} product changes to {settings.topic('product-changes')}")
    return EXIT_OK
