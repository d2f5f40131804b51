"""``catalogflow broker start|stop|status``: the local Kafka broker from a shell.

Exit codes: 0 ok, 1 failure (message on stderr), 3 ``status`` found no running broker.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from catalogflow.localbroker.launcher import (
    KAFKA_VERSION,
    BrokerConfig,
    LocalBroker,
    default_cache_dir,
    ensure_jars,
)
from catalogflow.streams.errors import CatalogflowError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_NOT_RUNNING = 3


def _default_data_dir() -> str:
    return os.environ.get("CATALOGFLOW_KAFKA_DATA", "./var/kafka")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_default_data_dir()),
        help="KRaft data, pid file and broker.out (default %(default)s, or CATALOGFLOW_KAFKA_DATA)",
    )


def add_broker_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``broker start|stop|status``; dispatch with :func:`run_broker_command`."""
    broker = subparsers.add_parser("broker", help="run a local single-node Kafka broker")
    broker.set_defaults(run=run_broker_command)
    actions = broker.add_subparsers(dest="broker_command", required=True, metavar="COMMAND")

    actions.add_parser("fetch", help="download the Kafka jars with Maven into the cache")

    start = actions.add_parser("start", help="start the broker (formats storage on first use)")
    _add_common(start)
    start.add_argument("--port", type=int, default=9092, help="client port (default %(default)s)")
    start.add_argument("--heap-mb", type=int, default=512, help="JVM heap (default %(default)s)")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")

    stop = actions.add_parser("stop", help="stop the broker (SIGTERM, SIGKILL after --timeout)")
    _add_common(stop)
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")

    status = actions.add_parser("status", help="show whether the broker runs (exit 3 if not)")
    _add_common(status)


def _progress(message: str) -> None:
    print(message, flush=True)


def run_broker_command(args: argparse.Namespace) -> int:
    """Run the parsed ``broker`` sub-command and return the process exit code."""
    if args.broker_command == "fetch":
        try:
            jars = ensure_jars(default_cache_dir(), progress=_progress)
        except CatalogflowError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"Kafka {KAFKA_VERSION} jars ready in {jars}")
        return EXIT_OK
    config = BrokerConfig(
        data_dir=args.data_dir,
        port=getattr(args, "port", 0),
        heap_mb=getattr(args, "heap_mb", 512),
    )
    broker = LocalBroker(config, progress=_progress)
    try:
        if args.broker_command == "start":
            broker.start(timeout=args.timeout)
            return EXIT_OK
        if args.broker_command == "stop":
            if not broker.stop(timeout=args.timeout):
                print(f"no broker running for {broker.data_dir}")
            return EXIT_OK
        state = broker.status()
        if not state.running:
            print(f"not running (Kafka {state.kafka_version}, data {state.data_dir})")
            return EXIT_NOT_RUNNING
        print(
            f"running pid {state.pid} at {state.bootstrap} "
            f"(Kafka {state.kafka_version}, data {state.data_dir})"
        )
        return EXIT_OK
    except CatalogflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
