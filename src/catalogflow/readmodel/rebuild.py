"""``read-model rebuild``: drop the read model and fold every topic again from its
beginning up to the end offsets seen at the start; then stop.

The read model is a view, never the source of truth, so this is always safe (stop
the projector first: two writers would fold the same records twice). The offsets it
ends at are stored like the projector's, so a projector started afterwards goes on
from there. Records that cannot be folded are counted, not sent to ``dead-letters``
again: the projector did that when it first met them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from catalogflow.readmodel import tables
from catalogflow.readmodel.batch import Record, apply_batch
from catalogflow.readmodel.projector import BATCH_MESSAGES, consumer_config, to_record, topic_names
from catalogflow.readmodel.store import drop, upgrade
from catalogflow.streams.admin import admin_client
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.reader import PROBE_TIMEOUT_S, BrokerUnavailable
from catalogflow.streams.settings import Settings

AGENT = "read-model-rebuild"
STALL_S = 30.0


@dataclass
class RebuildSummary:
    records: dict[str, int] = field(default_factory=dict)  # topic -> records folded
    unfoldable: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows at the end
    seconds: float = 0.0
    fold_seconds: float = 0.0  # of those, in folds and their transactions


def rebuild(
    settings: Settings, engine: sa.Engine, progress: Callable[[str], None] = lambda _: None
) -> RebuildSummary:
    started = time.monotonic()
    ends = _end_offsets(settings)
    drop(engine)
    upgrade(engine)
    summary = RebuildSummary(records={name: 0 for name in topic_names(settings).values()})
    if ends:
        _fold_to(settings, engine, ends, summary, progress)
    with engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            summary.rows[table.name] = int(count)
    summary.seconds = time.monotonic() - started
    return summary


def _end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """(full topic, partition) -> end offset now, for partitions that hold records."""
    admin = admin_client(settings)
    try:
        metadata = admin.list_topics(timeout=PROBE_TIMEOUT_S)
    except KafkaException as exc:
        raise BrokerUnavailable(settings.bootstrap_servers) from exc
    consumer = Consumer(consumer_config(settings, f"{settings.app_id}-{AGENT}"))
    ends: dict[tuple[str, int], int] = {}
    try:
        for topic in sorted(topic_names(settings)):
            if topic not in metadata.topics:
                continue
            for partition in sorted(metadata.topics[topic].partitions):
                low, high = consumer.get_watermark_offsets(
                    KafkaPartition(topic, partition), timeout=10.0, cached=False
                )
                if high > low:
                    ends[(topic, partition)] = high
    except KafkaException as exc:
        raise CatalogflowError(f"reading end offsets: {exc.args[0]}") from exc
    finally:
        consumer.close()
    return ends


def _fold_to(
    settings: Settings,
    engine: sa.Engine,
    ends: dict[tuple[str, int], int],
    summary: RebuildSummary,
    progress: Callable[[str], None],
) -> None:
    names = topic_names(settings)
    conf = consumer_config(settings, f"{settings.app_id}-{AGENT}")
    conf["enable.partition.eof"] = True
    consumer = Consumer(conf)
    remaining = dict(ends)
    try:
        consumer.assign([KafkaPartition(t, p, OFFSET_BEGINNING) for t, p in sorted(ends)])
        idle_since = last_report = time.monotonic()
        while remaining:
            batch: list[Record] = []
            for message in consumer.consume(BATCH_MESSAGES, 0.5):
                where = (str(message.topic()), int(message.partition() or 0))
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        remaining.pop(where, None)
                        continue
                    raise CatalogflowError(f"reading {where[0]}: {error.str()}")
                record = to_record(message)
                if where not in remaining or record.offset >= remaining[where]:
                    continue  # past the end seen at the start
                batch.append(record)
                if record.offset >= remaining[where] - 1:
                    remaining.pop(where)
            now = time.monotonic()
            if not batch:
                if now - idle_since > STALL_S:
                    raise CatalogflowError(f"rebuild stalled for {STALL_S:.0f} s")
                continue
            idle_since = now
            folding = time.monotonic()
            folded = apply_batch(
                engine, batch, names, AGENT, signing_key=settings.signing_key.reveal()
            )
            summary.fold_seconds += time.monotonic() - folding
            summary.unfoldable += len(folded.dead)
            for record in batch:
                summary.records[names[record.topic]] += 1
            if now - last_report > 5.0:
                progress(f"{sum(summary.records.values())} records folded")
                last_report = now
    except KafkaException as exc:
        raise CatalogflowError(f"rebuild: {exc.args[0]}") from exc
    finally:
        consumer.close()
