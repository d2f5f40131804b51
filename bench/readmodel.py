"""The projector's rate: events per second folded into SQLite and into PostgreSQL,
against the rate at which the workers produced task events in the same run.

One worker runs the three-step test chain (``tests.integration.engine_actions``: no
model, so the workers produce events as fast as they can, the hardest case for the
projector) over N products to Completed. The task events' broker timestamps give
the production rate. Then ``read-model rebuild`` folds every topic of the run into a
fresh SQLite file and a fresh database on a local PostgreSQL server, timed.

Progress on stderr; a table (or with ``--json`` one JSON document) on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import yaml
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.localbroker.launcher import free_port
from catalogflow.localbroker.postgres import LocalPostgres
from catalogflow.streams.admin import ensure_topics
from catalogflow.streams.control import apply_definition, start_run
from catalogflow.streams.definitions import parse_definition
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess
from confluent_kafka import Consumer, KafkaError, TopicPartition

from bench.harness import ROOT, say, start_broker, stop_on_signals
from catalogflow.readmodel.rebuild import rebuild
from catalogflow.readmodel.store import engine_for

TEST_ACTIONS = "tests.integration.engine_actions"
TYPES = ["test_extract", "test_enrich", "test_translate"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.readmodel",
        description="Events/s the projector folds into SQLite and PostgreSQL vs the rate "
        "the workers produce task events.",
    )
    parser.add_argument(
        "--products", type=int, default=2000, help="catalog size; a quarter matches (2000)"
    )
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with stop_on_signals(), ExitStack() as cleanup:
        workdir = Path(cleanup.enter_context(TemporaryDirectory(prefix="bench-readmodel-")))
        bootstrap = args.bootstrap or start_broker(workdir / "kafka", cleanup, heap_mb=512)
        results = run(bootstrap, args.products, workdir, cleanup)
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


def run(bootstrap: str, products: int, workdir: Path, cleanup: ExitStack) -> dict[str, Any]:
    settings = Settings.load(environ={}).replace(
        broker=bootstrap,
        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
        app_id="",
        store="memory://",
        data_dir=workdir / "worker",
        web_port=free_port(),
        action_plugins=TEST_ACTIONS,
    )
    ensure_topics(settings, action_types=TYPES)
    worker = WorkerProcess(settings, workdir / "worker.log", env={"PYTHONPATH": str(ROOT)})
    say("starting a worker …")
    cleanup.callback(worker.stop)
    worker.start(timeout=180)
    producer = RecordProducer(settings)
    changes = sample_changes(products)
    for change in changes:
        producer.send("product-changes", change["sku"], change)
    producer.flush()
    worker.wait_for("/products/", lambda a: a["count"] == products, timeout=600)
    definition = parse_definition(chain(), "bench-readmodel.yaml", TYPES)
    apply_definition(settings, definition, "bench-readmodel.yaml", "bench")
    say(f"running the test chain over {products} products …")
    run_id = start_run(settings, definition.id, "bench")
    worker.wait_for(f"/runs/{run_id}/", lambda r: r.get("status") == "COMPLETED", timeout=1800)
    produced = task_event_rate(settings)
    say(f"workers: {produced['events']} task events at {produced['events_per_s']:.0f}/s")
    server = LocalPostgres()
    server.start()
    cleanup.callback(server.stop)
    folded = {
        "sqlite": fold_rate(settings, f"sqlite:///{workdir / 'read-model.sqlite'}"),
        "postgres": fold_rate(settings, server.create_database("bench")),
    }
    return {"products": products, "workers": produced, "projector": folded}


def chain() -> str:
    steps = [
        {"id": "extract", "type": "test_extract", "reads": ["description"]},
        {"id": "enrich", "type": "test_enrich", "reads": ["name"]},
        {"id": "translate", "type": "test_translate"},
    ]
    return yaml.safe_dump(
        {
            "id": "bench-readmodel",
            "name": "read model bench",
            "mode": "one_time",
            "trigger": {
                "all": [
                    {
                        "field": "category",
                        "operator": "equals",
                        "value": "Pet Food/Cat/Dry Cat Food",
                    }
                ]
            },
            "actions": steps,
        }
    )


def task_event_rate(settings: Settings) -> dict[str, Any]:
    """Task events on the topic and the rate between the first and the last (broker
    timestamps: when the workers produced them)."""
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    consumer = Consumer(
        {**conf, "group.id": f"{settings.app_id}-bench", "enable.partition.eof": True}
    )
    topic = settings.topic("task-events")
    try:
        partitions = [TopicPartition(topic, p, 0) for p in range(settings.partitions)]
        consumer.assign(partitions)
        remaining, stamps = set(range(settings.partitions)), []
        while remaining:
            for message in consumer.consume(1000, 1.0):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    remaining.discard(message.partition() or 0)
                elif error is None:
                    stamps.append(message.timestamp()[1])
    finally:
        consumer.close()
    span = (max(stamps) - min(stamps)) / 1000 if len(stamps) > 1 else 0.0
    return {
        "events": len(stamps),
        "seconds": span,
        "events_per_s": len(stamps) / span if span else 0.0,
    }


def fold_rate(settings: Settings, url: str) -> dict[str, Any]:
    engine = engine_for(url)
    try:
        say(f"rebuilding into {engine.dialect.name} …")
        started = time.monotonic()
        summary = rebuild(settings, engine)
        seconds = time.monotonic() - started
    finally:
        engine.dispose()
    records = sum(summary.records.values())
    folding = summary.fold_seconds or seconds
    return {
        "records": records,
        "task_events": summary.records["task-events"],
        "seconds": seconds,  # the whole rebuild: drop, migrate, connect, fold
        "fold_seconds": folding,  # decoding, folding and committing batches only
        "records_per_s": records / folding,
    }


def report(results: dict[str, Any]) -> str:
    made = results["workers"]
    lines = [
        f"{results['products']} products; the workers produced {made['events']} task events "
        f"in {made['seconds']:.1f} s: {made['events_per_s']:.0f}/s",
        "",
        f"{'read model':<12}{'records':>9}{'rebuild s':>11}{'fold s':>8}{'records/s':>11}"
        f"{'vs workers':>12}",
    ]
    for name, folded in results["projector"].items():
        ratio = folded["records_per_s"] / made["events_per_s"] if made["events_per_s"] else 0.0
        lines.append(
            f"{name:<12}{folded['records']:>9}{folded['seconds']:>11.1f}"
            f"{folded['fold_seconds']:>8.1f}{folded['records_per_s']:>11.0f}{ratio:>11.1f}x"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
