"""Bad bytes on product-changes land in dead-letters with coordinates, raw bytes and a
distinct reason each, and the worker keeps processing the good events around them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from catalogflow.connectors.sample_catalog import sample_changes
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.producer import RecordProducer
from catalogflow.streams.settings import Settings
from catalogflow.testbench.workerproc import WorkerProcess
from confluent_kafka import Consumer

pytestmark = pytest.mark.kafka


def bad_payloads(schemas: SchemaStore) -> dict[str, bytes]:
    good = schemas.encode("ProductChanged", next(sample_changes(1, start=900)))
    header = good[:10]
    empty_sku = {**next(sample_changes(1, start=901)), "sku": "  "}
    return {
        "short-payload": b"\x00\x01",
        "bad-magic": b"\xc3\x02" + good[2:],
        "unknown-schema": good[:2] + b"\x01\x02\x03\x04\x05\x06\x07\x08" + good[10:],
        "truncated": good[: len(good) // 2],
        "malformed-body": header + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        "wrong-schema": schemas.encode("WorkflowCommand", command_record()),
        "invalid-record": schemas.encode("ProductChanged", empty_sku),
    }


def command_record() -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "command_id": "c1",
        "workflow_id": "w1",
        "command": "RUN",
        "run_id": None,
        "issued_by": "test",
        "issued_at": datetime(2026, 1, 1, tzinfo=UTC),
        "arguments": {},
    }


def read_all(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    conf = settings.confluent_config()
    conf.pop("partitioner")
    consumer = Consumer(
        {**conf, "group.id": f"{settings.app_id}-reader-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.topic(topic)])
    messages: list[Any] = []
    try:
        import time

        deadline = time.monotonic() + timeout
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
    finally:
        consumer.close()
    return messages


def test_each_bad_payload_is_dead_lettered_with_its_reason(
    settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    schemas = SchemaStore.shipped()
    payloads = bad_payloads(schemas)
    producer = RecordProducer(settings)
    good = list(sample_changes(20))
    # Good and bad interleaved on the same partition (same key) and on others.
    for index, (reason, payload) in enumerate(payloads.items()):
        producer.send("product-changes", good[index]["sku"], good[index])
        producer.send_raw("product-changes", good[index]["sku"].encode(), payload)
        assert reason  # keeps the pairing readable in failures
    for change in good[len(payloads) :]:
        producer.send("product-changes", change["sku"], change)
    producer.flush()

    worker = start_worker()
    worker.wait_for("/products/", lambda a: a["count"] == len(good))

    letters = read_all(settings, "dead-letters", expected=len(payloads))
    records = [schemas.decode(m.value(), expected="DeadLetter") for m in letters]
    by_reason = {r["reason"]: r for r in records}
    assert sorted(by_reason) == sorted(payloads), records
    for reason, record in by_reason.items():
        assert record["value"] == payloads[reason]
        assert record["source_topic"] == settings.topic("product-changes")
        assert record["agent"] == "catalog"
        assert record["detail"]
        assert record["source_offset"] >= 0
    # The coordinates point at the original message.
    source = {
        (m.partition(), m.offset()): m.value()
        for m in read_all(settings, "product-changes", expected=len(good) + len(payloads))
    }
    for record in records:
        assert source[(record["source_partition"], record["source_offset"])] == record["value"]
    assert worker.get("/products/PF-000019/")["sku"] == "PF-000019"
