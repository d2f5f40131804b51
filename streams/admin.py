"""Creates catalogflow's topics before anything uses them, and refuses a cluster
whose topics disagree with the settings (a wrong partition count would silently
break co-partitioning of SKU-keyed state)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from catalogflow.streams.errors import CatalogflowError, ConfigError
from catalogflow.streams.settings import Settings
from catalogflow.streams.topics import TOPICS, task_topic
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

#: librdkafka's own log lines (connection retries and such) go to Python logging
#: instead of stderr, where they would drown a command's output.
KAFKA_CLIENT_LOG = logging.getLogger("catalogflow.kafka")

#: Dead letters and raw change events are kept for a week; compacted topics forever.
DELETE_RETENTION_MS = str(7 * 24 * 3600 * 1000)


def admin_client(settings: Settings) -> AdminClient:
    conf: dict[str, Any] = settings.confluent_config()
    conf.pop("partitioner")
    conf["logger"] = KAFKA_CLIENT_LOG
    return AdminClient(conf)


def ensure_topics(
    settings: Settings,
    action_types: Iterable[str] = (),
    progress: Callable[[str], None] = lambda _: None,
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics; return the names created. Idempotent."""
    admin = admin_client(settings)
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise CatalogflowError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc.args[0]}"
        ) from exc
    wanted: list[NewTopic] = []
    specs = [(settings.topic(spec.name), spec.compacted) for spec in TOPICS.values()]
    specs += [(settings.topic(task_topic(kind)), False) for kind in action_types]
    for name, compacted in specs:
        if name in existing:
            have = len(existing[name].partitions)
            if have != settings.partitions:
                raise ConfigError(
                    f"topic {name} has {have} partitions but settings say {settings.partitions}; "
                    "SKU-keyed state needs every topic to agree (set partitions to match)"
                )
            continue
        config = (
            {"cleanup.policy": "compact"}
            if compacted
            else {"cleanup.policy": "delete", "retention.ms": DELETE_RETENTION_MS}
        )
        wanted.append(
            NewTopic(name, settings.partitions, settings.replication_factor, config=config)
        )
    created: list[str] = []
    if not wanted:
        return created
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a racing worker made it
                raise CatalogflowError(f"cannot create topic {name}: {exc.args[0]}") from exc
        else:
            created.append(name)
            progress(f"created topic {name}")
    return created
