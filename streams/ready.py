"""Gets the cluster ready for a worker before faust starts.

faust creates its internal topics (the tables' changelogs, the assignor's leader
topic) itself and subscribes to them a moment later; on a fresh or busy broker the
new topics are not in the metadata yet, and aiokafka logs "Topic … not found in
cluster metadata" as an ERROR before it retries. Likewise the first consumer group
of a new cluster makes the broker create ``__consumer_offsets``, and until it has,
aiokafka logs "Group Coordinator Request failed: GroupCoordinatorNotAvailableError".
Both are races of start-up order, not faults, so the worker removes them: it creates
every topic it will use first, then waits until each has a leader and the group
coordinator answers. A cluster that stays unready fails with what to check.
"""

from __future__ import annotations

import time
from typing import Any

from catalogflow.streams.admin import admin_client
from catalogflow.streams.app import Topology
from catalogflow.streams.errors import CatalogflowError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic


def internal_topics(topology: Topology) -> dict[str, NewTopic]:
    """faust's own topics of this worker: the changelog of every table and the
    leader assignor's topic (named as faust names it, leader_assignor.py)."""
    settings = topology.settings
    wanted = {
        f"{topology.app.conf.id}-__assignor-__leader": NewTopic(
            f"{topology.app.conf.id}-__assignor-__leader", 1, settings.replication_factor
        )
    }
    for table in topology.tables.values():
        name = table.changelog_topic.get_topic_name()
        wanted[name] = NewTopic(
            name,
            settings.partitions,
            settings.replication_factor,
            config={"cleanup.policy": "compact"},
        )
    return wanted


def prepare_cluster(topology: Topology, timeout: float = 60.0) -> None:
    """Create faust's internal topics if missing, then wait until every topic of the
    worker has a leader on each partition and the group coordinator is available."""
    settings = topology.settings
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    internal = internal_topics(topology)
    existing = _topics(admin, settings.bootstrap_servers)
    missing = [topic for name, topic in internal.items() if name not in existing]
    if missing:
        for name, future in admin.create_topics(missing, request_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":  # a racing worker made it
                    raise CatalogflowError(f"cannot create topic {name}: {exc.args[0]}") from exc
    names = set(internal) | {topic.get_topic_name() for topic in topology.inputs.values()}
    while not_ready := _without_leader(_topics(admin, settings.bootstrap_servers), names):
        if time.monotonic() > deadline:
            raise CatalogflowError(
                f"topics {', '.join(sorted(not_ready)[:5])} have no partition leader after "
                f"{timeout:.0f}s; check that the brokers at {settings.bootstrap_servers} are up"
            )
        time.sleep(0.2)
    while (problem := _coordinator_problem(admin, settings.app_id)) is not None:
        if time.monotonic() > deadline:
            raise CatalogflowError(
                f"no group coordinator for {settings.app_id} after {timeout:.0f}s ({problem}); "
                "check that the broker can create __consumer_offsets "
                "(offsets.topic.replication.factor must not exceed the number of brokers)"
            )
        time.sleep(0.2)


def _topics(admin: AdminClient, bootstrap: str) -> dict[str, Any]:
    try:
        return dict(admin.list_topics(timeout=30).topics)
    except KafkaException as exc:
        raise CatalogflowError(f"cannot reach Kafka at {bootstrap}: {exc.args[0]}") from exc


def _without_leader(topics: dict[str, Any], names: set[str]) -> set[str]:
    def ready(name: str) -> bool:
        meta = topics.get(name)
        if meta is None or meta.error is not None or not meta.partitions:
            return False
        return all(p.leader >= 0 and p.error is None for p in meta.partitions.values())

    return {name for name in names if not ready(name)}


def _coordinator_problem(admin: AdminClient, group: str) -> str | None:
    """None once the cluster's group coordinator answers for ``group``."""
    try:
        description = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    except KafkaException as exc:
        return str(exc.args[0])
    coordinator = getattr(description, "coordinator", None)
    return None if coordinator is not None else "no coordinator in the answer"
