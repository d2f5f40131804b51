"""A plain (non-Faust) producer for commands and importers: encodes records with the
topic's Avro contract and fails loudly if the broker does not confirm them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalogflow.streams.admin import KAFKA_CLIENT_LOG
from catalogflow.streams.codec import SchemaStore
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.settings import Settings
from catalogflow.streams.signing import signed_for
from catalogflow.streams.topics import TOPICS, TopicName
from confluent_kafka import KafkaError, Message, Producer


class RecordProducer:
    def __init__(self, settings: Settings) -> None:
        conf: dict[str, Any] = settings.confluent_config()
        conf.update(
            {
                "enable.idempotence": True,
                "linger.ms": 20,
                "acks": "all",
                "logger": KAFKA_CLIENT_LOG,
            }
        )
        self._settings = settings
        self._producer = Producer(conf)
        self._schemas = SchemaStore.shipped()
        self._errors: list[str] = []
        self.delivered = 0

    def send(self, topic: TopicName, key: str, record: Mapping[str, Any]) -> None:
        """Encode and send ``record``; commands and decisions are signed when the
        settings hold the signing key (:mod:`catalogflow.streams.signing`)."""
        record = signed_for(self._settings, topic, record)
        value = self._schemas.encode(TOPICS[topic].schema, record)
        self.send_raw(topic, key.encode(), value)

    def send_raw(self, topic: TopicName, key: bytes | None, value: bytes) -> None:
        """Send bytes as they are; tests use it to put malformed messages on a topic."""
        while True:
            try:
                self._producer.produce(
                    self._settings.topic(topic), value=value, key=key, on_delivery=self._on_delivery
                )
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.5)
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for every confirmation; raise if any message was not delivered."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise CatalogflowError(f"{remaining} messages not confirmed by Kafka in {timeout:.0f}s")
        if self._errors:
            first, count = self._errors[0], len(self._errors)
            self._errors.clear()
            raise CatalogflowError(f"{count} messages failed to deliver; first: {first}")
        return self.delivered

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._errors.append(f"{message.topic()}: {error.str()}")
        else:
            self.delivered += 1
