"""The local broker against real clients: confluent-kafka in, aiokafka out, restarts keep data."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from catalogflow.localbroker.launcher import KAFKA_VERSION, LocalBroker
from confluent_kafka import Consumer, Producer

# confluent-kafka 2.16 re-exports NewTopic without marking it public for mypy.
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

pytestmark = pytest.mark.kafka


def _create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions)])
    futures[topic].result(timeout=30)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(count):
        producer.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(30) == 0


def _consume_all(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-check",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            value = msg.value() if msg is not None and msg.error() is None else None
            if value is not None:
                values.append(value)
    finally:
        consumer.close()
    return values


async def test_confluent_producer_to_aiokafka_consumer(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}roundtrip"
    _create_topic(kafka_bootstrap, topic, partitions=3)
    _produce(kafka_bootstrap, topic, 100)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 100 and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    assert record.key is not None and record.value is not None
                    seen[record.key] = record.value
        await consumer.commit()  # exercises the group coordinator (__consumer_offsets)
    finally:
        await consumer.stop()
    assert seen == {f"k{i}".encode(): f"v{i}".encode() for i in range(100)}


def test_restart_keeps_data_and_status(
    local_broker_factory: Callable[[Path], LocalBroker],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = local_broker_factory(tmp_path / "kafka")
    bootstrap = broker.start()
    first_start = broker.last_start_seconds
    format_seconds = broker.last_format_seconds
    status = broker.status()
    assert status.running and status.bootstrap == bootstrap and status.pid is not None
    assert status.kafka_version == KAFKA_VERSION

    topic = "restart.check"
    _create_topic(bootstrap, topic)
    _produce(bootstrap, topic, 20)

    assert broker.stop() is True
    assert broker.status().running is False
    assert broker.stop() is False  # nothing left to stop

    assert broker.start() == bootstrap  # same ports from the same data dir
    clean_restart = broker.last_start_seconds
    _produce(bootstrap, topic, 5)
    assert len(_consume_all(bootstrap, topic, 25)) == 25

    assert broker.kill() is True
    assert broker.status().running is False
    assert broker.start() == bootstrap  # recovers after an unclean shutdown
    crash_restart = broker.last_start_seconds
    assert len(_consume_all(bootstrap, topic, 25)) == 25

    # Another handle on the same data dir (like the CLI) sees and stops the process.
    other = local_broker_factory(tmp_path / "kafka")
    assert other.status().pid == broker.status().pid
    assert other.stop() is True
    assert broker.status().running is False

    with capsys.disabled():
        print(
            f"\nKafka {KAFKA_VERSION}: format {format_seconds:.1f} s, first start "
            f"{first_start:.1f} s, restart {clean_restart:.1f} s, "
            f"restart after kill {crash_restart:.1f} s"
        )
