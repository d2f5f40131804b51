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
    from catalogflow.connectors.llm.simulator import add_simulator_commands
    from catalogflow.connectors.magento.pull import add_magento_commands
    from catalogflow.demo import add_demo_command
    from catalogflow.feed_cli import add_feed_commands
    from catalogflow.importer import add_import_command
    from catalogflow.localbroker.cli import add_broker_commands
    from catalogflow.moderation_cli import add_moderation_commands
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

    add_demo_command(commands)
    add_broker_commands(commands)
    add_simulator_commands(commands)
    add_workflow_commands(commands)
    add_moderation_commands(commands)
    add_import_command(commands)
    add_magento_commands(commands)
    add_feed_commands(commands)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(args.config)


def _run_worker(args: argparse.Namespace) -> NoReturn:
    import faust

    from catalogflow.streams.admin import ensure_topics
    from catalogflow.streams.ready import prepare_cluster
    from catalogflow.worker import build_worker

    settings = _settings(args)
    topology = build_worker(settings)
    ensure_topics(settings, topology.registry.types, progress=print)
    prepare_cluster(topology)  # no start-up race with faust's own topics (streams/ready.py)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(topology.app, loglevel=args.loglevel)
    worker.execute_from_commandline()  # never returns: exits when the worker stops


def _run_topics(args: argparse.Namespace) -> int:
    from catalogflow.streams.admin import ensure_topics

    settings = _settings(args)
    created = ensure_topics(settings, progress=print)
    print(f"{len(created)} topics created, the rest already existed ({settings.bootstrap_servers})")
    return EXIT_OK


def _run_sample(args: argparse.Namespace) -> int:
    settings = _settings(args)
    sent = publish_sample(settings, args.count, args.seed)
    print(f"published {sent} product changes to {settings.topic('product-changes')}")
    return EXIT_OK


def publish_sample(settings: Settings, count: int, seed: int) -> int:
    from catalogflow.connectors.sample_catalog import sample_changes
    from catalogflow.streams.admin import ensure_topics
    from catalogflow.streams.producer import RecordProducer

    if count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    ensure_topics(settings)
    producer = RecordProducer(settings)
    for number, change in enumerate(sample_changes(count, seed), start=1):
        producer.send("product-changes", change["sku"], change)
        if number % 500 == 0:
            print(f"  queued {number}/{count}")
    return producer.flush()
