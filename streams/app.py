"""The Faust app and its topology, wired in one place.

Agents consume raw bytes and decode through :mod:`catalogflow.streams.codec` inside
:func:`decoded`, so a message that does not decode is dead-lettered with its
coordinates instead of being skipped somewhere inside faust. Everything a worker
produces is encoded by the Avro codec of the topic's contract.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
from catalogflow.connectors.targets.base import SyncTarget, TargetContext
from catalogflow.connectors.targets.registry import TargetRegistry, load_targets
from catalogflow.streams.actions import ActionRegistry
from catalogflow.streams.clock import Clock, SystemClock
from catalogflow.streams.codec import SchemaStore, avro_codec
from catalogflow.streams.deadletter import DeadLetters
from catalogflow.streams.errors import InvalidMessage
from catalogflow.streams.faust_workarounds import (
    BoundedStopConsumer,
    CatalogflowTableManager,
    KeyPartitionedTable,
    StaticMemberAssignor,
)
from catalogflow.streams.records import Origin
from catalogflow.streams.settings import Settings
from catalogflow.streams.signing import signed_for
from catalogflow.streams.topics import TABLES, TASK_SCHEMA, TOPICS, changelog_topic, task_topic
from faust.transport.drivers import aiokafka as aiokafka_transport
from faust.types import EventT, StreamT

R = TypeVar("R")

#: Table writes faust may hold unsent before the streams wait for them to drain.
PRODUCER_BUFFER_MESSAGES = 20_000


@dataclass(frozen=True)
class Topology:
    """The app with every topic and table it uses; agents register against this."""

    settings: Settings
    app: faust.App
    inputs: dict[str, faust.TopicT]  # raw bytes: decode with `decoded()`
    outputs: dict[str, faust.TopicT]  # Avro-encoded by the topic's contract
    tables: dict[str, Any]  # faust tables by TABLES name, Avro values keyed by UTF-8 strings
    dead_letters: DeadLetters
    schemas: SchemaStore
    registry: ActionRegistry
    clock: Clock = field(default_factory=SystemClock)  # what agents stamp records with
    targets: Mapping[str, SyncTarget] = field(default_factory=dict)  # sync targets by name

    @property
    def products(self) -> Any:
        return self.tables["products"]

    def send(
        self,
        topic: str,
        key: str | None,
        record: Mapping[str, object],
        partition: int | None = None,
    ) -> Any:
        """Send ``record`` encoded by the topic's contract; await the result to know
        the broker has it. Commands (the budget pause, the fan-out copies) are signed
        when the worker holds the signing key."""
        record = signed_for(self.settings, topic, record)
        return self.outputs[topic].send(
            key=key.encode() if key is not None else None, value=record, partition=partition
        )


def build_topology(
    settings: Settings,
    registry: ActionRegistry | None = None,
    clock: Clock | None = None,
    targets: TargetRegistry | None = None,
) -> Topology:
    """The worker's app; ``targets`` defaults to the built-in sync targets plus the
    ``sync_plugins`` ones, each built once for the worker."""
    registry = registry or ActionRegistry()
    clock = clock or SystemClock()
    # faust takes the consumer class from its Kafka transport class; the app offers no
    # setting for it. A stop during a rebalance must not hang (faust_workarounds).
    aiokafka_transport.Transport.Consumer = BoundedStopConsumer
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{host}" for host in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        broker_session_timeout=settings.session_timeout,
        broker_request_timeout=max(90.0, settings.session_timeout),  # faust: not below it
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        table_standby_replicas=settings.standby_replicas,  # see faust_workarounds
        consumer_group_instance_id=(
            f"{settings.app_id}-{settings.worker_id}" if settings.worker_id else None
        ),
        web_in_thread=False,
        TableManager=CatalogflowTableManager,  # race-free end of recovery (faust_workarounds)
        PartitionAssignor=StaticMemberAssignor,  # a restarted static member (faust_workarounds)
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    # Table writes wait in faust's producer buffer, and every stream stops for a
    # blocking flush (and logs "producer buffer full") once it holds more than 100:
    # a batch of task events alone writes hundreds of task states.
    app.producer.buffer.max_messages = PRODUCER_BUFFER_MESSAGES
    contracts: dict[str, str] = {name: spec.schema for name, spec in TOPICS.items()}
    contracts.update({task_topic(kind): TASK_SCHEMA for kind in registry.types})
    inputs: dict[str, faust.TopicT] = {}
    outputs: dict[str, faust.TopicT] = {}
    for name, schema in contracts.items():
        full = settings.topic(name)
        inputs[name] = app.topic(full, key_type=bytes, value_type=bytes, value_serializer="raw")
        outputs[name] = app.topic(full, key_type=bytes, value_serializer=avro_codec(schema))
    tables = {name: _avro_table(app, settings, name, spec.schema) for name, spec in TABLES.items()}
    return Topology(
        settings=settings,
        app=app,
        inputs=inputs,
        outputs=outputs,
        tables=tables,
        dead_letters=DeadLetters(outputs["dead-letters"]),
        schemas=SchemaStore.shipped(),
        registry=registry,
        clock=clock,
        targets=(targets or load_targets(settings)).build(TargetContext(settings, tables, clock)),
    )


def _avro_table(app: faust.App, settings: Settings, name: str, schema: str) -> Any:
    """A table keyed by UTF-8 strings whose values (changelog and store) are Avro.

    faust derives a table's codecs from its types and bakes them into the changelog
    topic at construction, so the changelog topic is declared here with ours.
    """
    codec = avro_codec(schema)
    changelog = app.topic(
        changelog_topic(settings, name),
        key_type=str,
        key_serializer="raw",
        value_serializer=codec,
        partitions=settings.partitions,
        compacting=True,
        deleting=False,
        # As faust's own changelogs: no stream reads it, so acking it would make
        # faust's livelock check report it idle every few seconds, forever.
        acks=False,
        internal=True,
        maxsize=131_072,  # as faust's own changelogs: they are read in bulk at recovery
        allow_empty=True,  # a tombstone deletes the row
    )
    table: Any = app.tables.add(
        KeyPartitionedTable(
            app,
            name=name,
            default=None,
            key_type=str,
            beacon=app.tables.beacon,
            partitions=settings.partitions,
            changelog_topic=changelog,
            help=TABLES[name].doc,
        )
    )
    table.key_serializer = "raw"
    table.value_serializer = codec
    table.key_scheme = TABLES[name].key_scheme
    return table


def origin_of(event: EventT[Any]) -> Origin:
    """The Kafka coordinates of ``event``, as a Task's ``origin``."""
    message = event.message
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset}


async def decoded(
    topology: Topology,
    stream: StreamT[Any],
    schema: type[R],
    agent: str,
    validate: Callable[[R], None] = lambda _: None,
) -> AsyncIterator[tuple[EventT[Any], R]]:
    """Yield each event with its decoded record; dead-letter the ones that fail.

    ``schema`` is the record's type from :mod:`catalogflow.streams.records`, named as
    its schema.

    The dead-letter write is confirmed before the next event is read, and faust only
    acks an event when the next one is read, so a bad offset is never committed first.
    """
    async for event in stream.events():
        record = await decode_or_dead_letter(topology, event, schema, agent, validate)
        if record is not None:
            yield event, record


async def decode_or_dead_letter(
    topology: Topology,
    event: EventT[Any],
    schema: type[R],
    agent: str,
    validate: Callable[[R], None] = lambda _: None,
) -> R | None:
    """The event's record, or None once the event is dead-lettered (confirmed) with the
    reason it does not decode or fails ``validate``."""
    try:
        record = topology.schemas.decode(event.message.value or b"", expected=schema)
        validate(record)
    except InvalidMessage as exc:
        await topology.dead_letters.send(event.message, exc, agent)
        return None
    return record


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    if settings.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.reveal(),
        mechanism=settings.sasl_mechanism,
        ssl_context=context,
    )
