"""Consumer lag per topic: the end offsets of a group's partitions minus where the group
is, summed per topic, as the ``catalogflow_consumer_lag_messages`` gauge.

Every worker reports its whole group (committed offsets from Kafka), and the projector
its own (the offsets it keeps in the read model, which are its real position: it never
commits to Kafka), so the figures of two instances agree and dashboards take their
``max``. One admin client asks the broker every :data:`LAG_INTERVAL` seconds, off the
event loop: no per-event work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from catalogflow.streams.admin import admin_client
from catalogflow.streams.errors import CatalogflowError
from catalogflow.streams.metrics.current import metrics
from catalogflow.streams.metrics.lag import CONSUMER_LAG
from catalogflow.streams.settings import Settings
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # confluent_kafka: no __all__
    AdminClient,
    OffsetSpec,
)

__all__ = ["LAG_INTERVAL", "LagProbe", "lag_by_topic", "register", "subscribed_topics"]

log = logging.getLogger(__name__)

#: Seconds between two measurements; a scrape every 15 s sees a fresh figure.
LAG_INTERVAL = 10.0
#: How long one measurement may wait for the broker.
LAG_TIMEOUT = 5.0

Partition = tuple[str, int]  # (full topic name, partition)
Offsets = Mapping[Partition, int]


def lag_by_topic(
    names: Mapping[str, str], end: Offsets, position: Offsets, start: Offsets
) -> dict[str, int]:
    """Per topic (``names``: full name -> the label's name), the sum over its partitions
    of end offset minus the group's position; a partition the group has no position in
    counts from its first offset (``start``). Never negative: a position read after the
    end offset (the two are separate requests) is no lag."""
    lag = dict.fromkeys(names.values(), 0)
    for (topic, partition), end_offset in end.items():
        if topic not in names:
            continue
        at = position.get((topic, partition))
        if at is None or at < 0:
            at = start.get((topic, partition), 0)
        lag[names[topic]] += max(0, end_offset - at)
    return lag


class LagProbe:
    """Measures a group's lag with one admin client, built on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._admin: AdminClient | None = None

    def partitions(self, names: Iterable[str]) -> list[Partition]:
        # Every catalogflow topic has `partitions` partitions (ensure_topics checks it).
        return [(topic, p) for topic in names for p in range(self.settings.partitions)]

    def record(
        self, group: str, names: Mapping[str, str], position: Offsets | None = None
    ) -> dict[str, int]:
        """Measure and set the gauge; ``position`` None: the group's committed offsets.
        Raises CatalogflowError when the broker does not answer in time."""
        partitions = self.partitions(names)
        try:
            at = position if position is not None else self.committed(group, partitions)
            end = self._offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
            missing = [tp for tp in partitions if at.get(tp, -1) < 0]
            start = (
                self._offsets(missing, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
                if missing
                else {}
            )
        except KafkaException as exc:
            raise CatalogflowError(f"cannot measure the lag of {group}: {exc.args[0]}") from exc
        lags = lag_by_topic(names, end, at, start)
        for topic, lag in lags.items():
            metrics().set(CONSUMER_LAG, float(lag), group=group, topic=topic)
        return lags

    def committed(self, group: str, partitions: list[Partition]) -> dict[Partition, int]:
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(topic, p) for topic, p in partitions]
        )
        futures = self._client().list_consumer_group_offsets([request], request_timeout=LAG_TIMEOUT)
        answer = futures[group].result(timeout=LAG_TIMEOUT)
        return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions}

    def _offsets(self, partitions: list[Partition], spec: Any) -> dict[Partition, int]:
        futures = self._client().list_offsets(
            {TopicPartition(topic, p): spec for topic, p in partitions},
            request_timeout=LAG_TIMEOUT,
        )
        return {
            (tp.topic, tp.partition): future.result(timeout=LAG_TIMEOUT).offset
            for tp, future in futures.items()
        }

    def _client(self) -> AdminClient:
        if self._admin is None:
            self._admin = admin_client(self.settings)
        return self._admin


def subscribed_topics(app: Any, settings: Settings) -> dict[str, str]:
    """The topics the worker's agents consume (full name -> name without the prefix):
    faust's changelogs and its leader topic are internal and not counted."""
    names: dict[str, str] = {}
    for channel in app.topics:
        if channel.internal or not channel.acks:
            continue
        for topic in channel.topics:
            if topic.startswith(settings.topic_prefix):
                names[topic] = topic.removeprefix(settings.topic_prefix)
    return names


def register(app: Any, settings: Settings) -> LagProbe:
    """Measure the worker group's lag every :data:`LAG_INTERVAL` seconds while ``app``
    runs (on every worker: each reports the whole group)."""
    probe = LagProbe(settings)
    group = str(app.conf.id)  # faust's consumer group id

    async def record_consumer_lag() -> None:
        names = subscribed_topics(app, settings)
        if not names:
            return
        try:
            await asyncio.to_thread(probe.record, group, names)
        except CatalogflowError as exc:
            log.warning("%s", exc)

    app.timer(interval=LAG_INTERVAL)(record_consumer_lag)
    return probe
