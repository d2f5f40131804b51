"""Reads a compacted topic from the beginning to its current end, outside any
consumer group: the latest record per key, for commands that need current state
(applied workflow versions, the products changelog) without a running worker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from catalogflow.streams.admin import KAFKA_CLIENT_LOG, admin_client
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import CatalogflowError, InvalidMessage
from catalogflow.streams.settings import Settings
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

PROBE_TIMEOUT_S = 3.0
PROGRESS_EVERY = 10_000

R = TypeVar("R")


class BrokerUnavailable(CatalogflowError):
    def __init__(self, bootstrap: str) -> None:
        super().__init__(f"no broker answered at {bootstrap}")
        self.bootstrap = bootstrap


class TopicMissing(CatalogflowError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic} does not exist")
        self.topic = topic


@overload
def read_latest(
    settings: Settings,
    topic: str,
    schema: type[R],
    progress: Callable[[int], None] = ...,
    probe_timeout: float = ...,
    missing_ok: bool = ...,
) -> dict[str, R]: ...


@overload
def read_latest(
    settings: Settings,
    topic: str,
    schema: str,
    progress: Callable[[int], None] = ...,
    probe_timeout: float = ...,
    missing_ok: bool = ...,
) -> dict[str, dict[str, Any]]: ...


def read_latest(
    settings: Settings,
    topic: str,
    schema: type[Any] | str,
    progress: Callable[[int], None] = lambda _: None,
    probe_timeout: float = PROBE_TIMEOUT_S,
    missing_ok: bool = True,
) -> dict[str, Any]:
    """Latest decoded record per key of ``topic`` (full name); a missing topic is
    empty unless ``missing_ok`` is false (then :class:`TopicMissing`). ``schema`` is
    the record type from :mod:`catalogflow.streams.records` (or its schema's name,
    for an untyped dict).

    Records that do not decode are skipped: the worker dead-letters them at their
    source, and one bad record must not fail a command.
    """
    try:
        raw = read_latest_raw(settings, topic, progress, probe_timeout)
    except TopicMissing:
        if not missing_ok:
            raise
        return {}
    store = SchemaStore.shipped()
    name = schema if isinstance(schema, str) else schema.__name__
    latest: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            latest[key.decode()] = store.decode(value, expected=name)
        except (InvalidMessage, UnicodeDecodeError):
            continue
    return latest


def read_latest_raw(
    settings: Settings,
    topic: str,
    progress: Callable[[int], None] = lambda _: None,
    probe_timeout: float = PROBE_TIMEOUT_S,
) -> dict[bytes, bytes]:
    """Latest value bytes per key of the compacted ``topic``, read from the start to
    the end offsets seen when reading begins; tombstones delete the key.

    Raises :class:`BrokerUnavailable` or :class:`TopicMissing` before reading.
    """

    try:
        metadata = admin_client(settings).list_topics(timeout=probe_timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(settings.bootstrap_servers) from exc
    if topic not in metadata.topics:
        raise TopicMissing(topic)
    partitions = sorted(metadata.topics[topic].partitions)

    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    conf.update(
        {
            # librdkafka wants a group id, but nothing is committed and nothing joins:
            # partitions are assigned explicitly.
            "group.id": f"{settings.app_id}-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "logger": KAFKA_CLIENT_LOG,
        }
    )
    consumer = Consumer(conf)
    latest: dict[bytes, bytes] = {}
    try:
        remaining: dict[int, int] = {}  # partition -> high watermark still to reach
        starts: list[Any] = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10.0, cached=False
            )
            if high > low:
                remaining[p] = high
                starts.append(TopicPartition(topic, p, low))
        consumer.assign(starts)
        read = 0
        idle_since = time.monotonic()
        while remaining:
            msg = consumer.poll(1.0)
            if msg is None:
                if time.monotonic() - idle_since > 30.0:
                    raise CatalogflowError(f"reading {topic} stalled for 30 s")
                continue
            idle_since = time.monotonic()
            partition = msg.partition()
            if partition is None:  # pragma: no cover - only client-level errors lack one
                raise CatalogflowError(f"reading {topic}: {msg.error()}")
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    remaining.pop(partition, None)
                    continue
                raise CatalogflowError(f"reading {topic}: {error.str()}")
            key, value = msg.key(), msg.value()
            if key is not None:
                if value is None:
                    latest.pop(key, None)
                else:
                    latest[key] = value
            read += 1
            if read % PROGRESS_EVERY == 0:
                progress(read)
            offset = msg.offset()
            if partition in remaining and offset is not None and offset >= remaining[partition] - 1:
                remaining.pop(partition)
    except KafkaException as exc:
        raise CatalogflowError(f"reading {topic}: {exc.args[0]}") from exc
    finally:
        consumer.close()
    return latest
