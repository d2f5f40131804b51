"""Every place catalogflow works around faust-streaming, in one module.

Each workaround below says what faust does, what breaks for us, which faust-streaming
issue describes it, and how to check on a faust upgrade whether it is still needed (and
still fits: each one overrides faust internals, so an upgrade may also break it). The
installed faust-streaming is 0.15.3; the issues were all open at that version.

* :class:`KeyPartitionedTable` (with :class:`KeyPartitionedRocksDBStore`): a table
  row is placed by its key, not by the event being processed;
* :class:`CatalogflowRecovery` (with :class:`CatalogflowTableManager`): the end of
  table recovery cannot throw away records already fetched;
* :func:`exit_to_replay`: a batch whose results could not be sent is replayed, never
  acked;
* :class:`StaticMemberAssignor`: a restarted static member whose web address changed
  takes its assignment back instead of hanging;
* :class:`BoundedStopConsumer` (with :class:`BoundedStopConsumerThread`): a worker told
  to stop in the middle of a rebalance stops instead of waiting for it forever;
* :func:`take_promptly`: a batch is handed over as soon as its first event is there
  (plus a short linger), not on faust's fixed timer.

Not here, because they are ways of using faust rather than patches of it:

* agents never use ``concurrency=N`` (faust-streaming issue 606, it can commit an offset
  past a message still in flight); the action agents take batches instead
  (``agents/actions.py``);
* no standby replicas (setting ``standby_replicas``, default 0; faust's default is 1).
  With standbys, a worker joining a running worker's group took its partitions,
  recovered, logged "Worker ready", answered ``/health/`` as serving, and never
  fetched its stream partitions: their committed offsets stayed unset and the run
  stayed RUNNING (three of three two-worker runs of ``bench.scale``; with 0, none). The
  symptom matches faust-streaming issue 629 ("certain topic partitions are not sending
  fetch requests", open). The price: a worker taking over a partition rebuilds its
  tables from the changelog instead of promoting a warm copy, which static membership
  (``worker_id``) and the RocksDB store keep to the changes since its last run.
  On an upgrade: run ``bench.scale --mode provider`` with ``standby_replicas=1``; if
  the two-worker run completes, standbys can come back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import faust
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from catalogflow.streams.codec import AvroCodec
from catalogflow.streams.tables import KeyScheme, key_partition
from faust.assignor import PartitionAssignor
from faust.assignor.client_assignment import ClientMetadata
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer
from faust.types import EventT
from mode.utils.futures import notify

log = logging.getLogger(__name__)

#: Exit code of a worker that stopped so that its uncommitted batch is replayed.
EXIT_REPLAY = 75


class KeyPartitionedTable(faust.Table[str, Any]):
    """A faust table that places each row by its key (the schemes are in
    :mod:`catalogflow.streams.tables`).

    What faust does: a table write goes to the changelog partition of the event being
    processed (``Table.partition_for_key`` reads the current event), and the RocksDB
    store reads and writes the database of that partition only.

    What breaks: agents that take batches (``take_events``) have no single current
    event, so faust refuses the write ("Cannot modify table key from outside of stream
    iteration", faust-streaming issue 497); and rows read by agents of another topic
    (``run-controls``, ``sync-pending``) would be looked up in the wrong partition's
    database. faust's own ``use_partitioner=True`` places the changelog by the
    producer's partitioner, but its RocksDB store then looks a key up in every
    partition's database (faust-streaming pull requests 130 and 144), and it cannot
    express the ``copy`` scheme (one copy of a run's controls per partition).

    On an upgrade: check that ``Table.partition_for_key``, ``Table._new_store_by_url``
    and the RocksDB ``Store._set/_get/_del/_contains`` and ``_db_for_partition`` still exist with
    these signatures; ``tests/integration/test_engine.py`` and
    ``tests/integration/test_crash.py`` (RocksDB, a worker killed and restarted) fail
    when a row is placed or read on the wrong partition.
    """

    key_scheme: KeyScheme = "sku"

    def partition_of(self, key: str) -> int:
        return key_partition(self.key_scheme, key, self.partitions or 1)

    def partition_for_key(self, key: Any) -> int:
        return self.partition_of(str(key))

    def __setitem__(self, key: str, value: Any) -> None:
        # faust encodes a written value twice, for the changelog and for the store,
        # inside this one call: the Avro codec encodes it once for both.
        codec = self.value_serializer
        if isinstance(codec, AvroCodec):
            with codec.encoding_once(value):
                super().__setitem__(key, value)
        else:
            super().__setitem__(key, value)

    def _new_store_by_url(self, url: Any) -> Any:
        if str(url).startswith("rocksdb:"):
            return KeyPartitionedRocksDBStore(
                url,
                self.app,
                self,
                table_name=self.name,
                key_type=self.key_type,
                key_serializer=self.key_serializer,
                value_serializer=self.value_serializer,
                value_type=self.value_type,
                loop=self.loop,
                options=self.options,
            )
        return super()._new_store_by_url(url)


class KeyPartitionedRocksDBStore(RocksDBStore):
    """faust's RocksDB store, reading and writing the database of the key's partition
    instead of the current event's (see :class:`KeyPartitionedTable`)."""

    def _partition(self, key: bytes) -> int:
        table = self.table
        assert isinstance(table, KeyPartitionedTable)
        return table.partition_of(key.decode())

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = self._partition(key)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db_for_partition(self._partition(key)).get(key)
        return value

    def _del(self, key: bytes) -> None:
        self._db_for_partition(self._partition(key)).delete(key)

    def _contains(self, key: bytes) -> bool:
        # faust's looks in the current event's partition, or in every partition's
        # database for a key it has not indexed (each ``table.get`` asks this first).
        return self._get(key) is not None


class CatalogflowRecovery(Recovery):
    """faust's table recovery, with the hand-over to the streams made race-free.

    What faust does: after the changelogs are read, ``Recovery.on_recovery_completed``
    resumes the stream partitions, awaits ``perform_seek()`` (a round trip for the
    committed offsets), and only then calls ``flow_control.resume()``, which *clears
    every channel queue*. The flow is still on from reading the changelogs, and
    aiokafka has already prefetched the stream partitions from their committed offsets
    (faust pauses partitions only in its own bookkeeping, not in aiokafka).

    What breaks: during the seek the fetcher delivers those records into the agents'
    queues, and the clear then throws away the ones no agent has taken yet. Records
    fetched before the seek are fetched again; records fetched after it are not:
    aiokafka's position is already past them. Their tasks never run, and the
    partition's commit stays below the first of them until the worker is restarted
    (faust-streaming issue 596, "bug C" in docs/crash-test.md).

    The workaround: stop the flow first, as faust itself does before a rebalance. With
    the flow stopped the fetcher returns nothing, and a record on its way to a queue is
    dropped (``getmany`` stops iterating, the drain loop's ``wait_first`` gives up on
    it), so nothing reaches a queue between resuming the stream partitions and the
    clear. The seek rewinds whatever was fetched before, the clear only empties stale
    events, and the ``resume_flow()`` at the end of faust's method starts delivery at
    the committed offsets, in order. If faust returns early (a newer rebalance
    started), the flow stays stopped, as after a revoke; the next recovery resumes it.

    On an upgrade: read ``Recovery.on_recovery_completed`` — if it now stops the flow
    (or clears the queues) before resuming the partitions, drop this class and
    :class:`CatalogflowTableManager`; if it no longer ends with ``resume_flow()``, this
    class would leave the flow stopped. ``tests/unit/test_recovery.py`` checks the
    effect on faust's flow control; ``tests/integration/test_crash.py`` catches the
    lost tasks on a real broker.
    """

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.app.consumer.stop_flow()
        self.app.flow_control.suspend()
        await super().on_recovery_completed(generation_id)


class CatalogflowTableManager(TableManager):
    """faust's table manager with :class:`CatalogflowRecovery` (set as the app's
    ``TableManager``: faust has no setting for the recovery class)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = CatalogflowRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class StaticMemberAssignor(PartitionAssignor):
    """faust's partition assignor, accepting an assignment made for this worker's
    previous address.

    What faust does: the assignment the group leader hands out carries the web URL it
    had for each member, and ``PartitionAssignor.on_assignment`` asserts that it is the
    worker's own ``canonical_url``.

    What breaks: with static membership (``worker_id``) a restarted worker rejoins
    under its old identity, and the broker, seeing a known static member, hands back
    the assignment it already had without a rebalance, made for the old process. If the
    web address changed (another port, a new pod IP), the assertion fails inside
    aiokafka's coordinator task ("Unexpected error in coordinator routine"), the
    coordinator stops, the consumer never gets its partitions, and the worker serves
    its HTTP views forever while processing nothing. No faust-streaming issue
    describes it (none found for 0.15.3).

    The workaround: take the assignment (its partitions are checked as before); only
    the leader's record of our URL is stale until the next rebalance. catalogflow does
    not route requests between workers by that URL (its views read local tables).

    On an upgrade: if ``on_assignment`` no longer asserts the URL, drop this class.
    ``tests/integration/test_startup_race.py`` restarts a static member on a new port.
    """

    def on_assignment(self, assignment: Any) -> None:
        metadata = ClientMetadata.loads(self._decompress(assignment.user_data))
        if metadata.url != str(self._url):
            log.info(
                "assignment made for this worker at %s (now %s): static member restarted",
                metadata.url,
                self._url,
            )
            metadata.url = str(self._url)
            assignment = ConsumerProtocolMemberAssignment(
                assignment.version, assignment.assignment, self._compress(metadata.dumps())
            )
        super().on_assignment(assignment)


#: Seconds the consumer may take to close before a rebalance still in progress is cut off.
CONSUMER_STOP_S = 5.0


class BoundedStopConsumerThread(AIOKafkaConsumerThread):
    """faust's consumer thread, whose consumer stops even during a rebalance.

    What faust does: on stop, the consumer thread first stops its method queue (the
    way the aiokafka coordinator hands rebalance callbacks to the worker) and then
    awaits ``AIOKafkaConsumer.stop()``, which awaits the coordinator's task "to finish
    all pending work".

    What breaks: a worker told to stop while a rebalance is under way (another worker
    just left: every two-worker test stops its workers one after the other) has its
    coordinator inside a revoke or assign callback that waits on the stopped queue, so
    ``stop()`` never returns and the worker hangs until its watchdog ends it
    (``streams/watchdog.py``, exit 70). No faust-streaming issue describes it for 0.15.3.

    The workaround: give ``stop()`` ``CONSUMER_STOP_S``; if the coordinator is still
    busy then, cancel its task and close the fetcher and the connections; the group
    sees the member go when its session times out. Nothing is lost: offsets not
    committed by then are replayed by the next owner, as after any crash (every step
    is idempotent).

    On an upgrade: check whether ``AIOKafkaConsumerThread.on_thread_stop`` still stops
    the method queue before the consumer; if the consumer is stopped first, drop this.
    ``tests/integration/test_read_side_cli.py`` stops two workers after a run.
    """

    async def on_thread_stop(self) -> None:
        consumer, self._consumer = self._consumer, None  # the parent then skips its stop
        await super().on_thread_stop()
        if consumer is None:
            return
        stopping = asyncio.ensure_future(consumer.stop())
        done, _ = await asyncio.wait({stopping}, timeout=CONSUMER_STOP_S)
        if done:
            stopping.result()
            return
        log.info("consumer still in a rebalance %.0fs after stop: ending it", CONSUMER_STOP_S)
        coordination = getattr(consumer._coordinator, "_coordination_task", None)
        if coordination is not None:
            coordination.cancel()
        await asyncio.wait({stopping})  # the coordinator's close ends with the cancel
        if stopping.cancelled() or stopping.exception() is not None:
            # What close() did not get to: the fetcher and the connections. The group
            # sees this member leave when its session times out, as after a crash.
            await consumer._fetcher.close()
            await consumer._client.close()


class BoundedStopConsumer(AIOKafkaFaustConsumer):
    """faust's aiokafka consumer with :class:`BoundedStopConsumerThread`."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return BoundedStopConsumerThread(self, loop=self.loop, beacon=self.beacon)


def exit_to_replay(reason: str) -> NoReturn:
    """Stop the worker at once, without committing, so its current batch is replayed.

    What faust does: when an agent returns or raises, faust acks the events it took
    (an agent that crashes has its events acked, and the offset of the one that failed
    is committed and skipped on restart: faust-streaming issue 315).

    What breaks: an action agent that could not send a batch's results (the broker
    refused them) would lose the whole batch. So it must neither return nor raise:
    ``os._exit`` ends the process before faust's commit timer runs, and the next worker
    reads the batch again from the last commit (every step is idempotent). Whatever
    runs the worker (systemd, Kubernetes) restarts it; ``EXIT_REPLAY`` says why it
    stopped.

    On an upgrade: check whether faust still acks the taken events of an agent that
    raises (``Agent._execute_actor`` / ``Stream`` ack on exception); if it stopped doing
    so, a raise would do. The crash test (``tests/integration/test_crash.py``) covers a
    worker that dies mid-batch.
    """
    log.critical("%s; exiting to replay it", reason)
    os._exit(EXIT_REPLAY)


def take_promptly(stream: Any, size: int, linger: float) -> AsyncIterator[list[EventT[Any]]]:
    """Batches of at most ``size`` events of ``stream``: each is handed over ``linger``
    seconds after its first event arrived, or at once when it is full.

    What faust does: ``Stream.take_events(size, within)`` waits for a full buffer or
    for ``within`` seconds counted from the end of the previous batch, so a batch that
    has events still waits out the timer, and an idle stream wakes every ``within``.

    What breaks: every hop of a slip added up to ``within`` of latency (six hops from a
    product change to its Magento write), and shortening ``within`` made idle agents
    spin. Here the wait starts with the batch's first event and an idle stream sleeps;
    under load a batch still fills while the previous one is handled, since the
    stream keeps buffering meanwhile. Acks are as in faust: a batch's events are
    acked when the next batch is asked for, never before.

    On an upgrade: this copies ``take_events``' use of the stream's internals
    (``add_processor``, ``_enable_passive``, ``current_event``, ``ack``,
    ``_processors``, ``_active_agens``); compare with the new ``take_events``, and
    check whether it gained a "from the first event" mode that makes this unneeded.
    The crash test covers the acks; ``tests/unit/test_faust_workarounds.py`` the
    batching.
    """
    batches = _take_promptly(stream, size, linger)
    stream._active_agens.add(batches)  # closed on the stream's stop, as faust's are
    return batches


async def _take_promptly(stream: Any, size: int, linger: float) -> AsyncIterator[list[EventT[Any]]]:
    events: list[EventT[Any]] = []
    arrived = asyncio.Event()
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future[None] | None = None
    acks_were = stream.enable_acks

    async def add_to_batch(value: Any) -> Any:
        nonlocal consuming
        try:
            if consuming is not None:  # a batch is being handled: wait for it
                try:
                    await consuming
                finally:
                    consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("take_promptly found no current event")
            events.append(event)
            arrived.set()
            if len(events) >= size:
                full.set()
                consumed.clear()
                await stream.wait(consumed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("adding an event to a batch failed: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False
    stream.add_processor(add_to_batch)
    stream._enable_passive(aiter(stream.channel))
    try:
        while not stream.should_stop:
            stopped = await stream.wait_for_stopped(arrived)  # no timeout: stop or crash
            if stopped and not events:
                break
            if not full.is_set():  # (mode reports a timeout as "stopped": not used)
                await stream.wait_for_stopped(full, timeout=linger)
            consuming = asyncio.get_running_loop().create_future()
            try:
                yield list(events)
            finally:
                for event in events:
                    await stream.ack(event)
                events.clear()
                arrived.clear()
                notify(consuming)
                full.clear()
                consumed.set()
    finally:
        stream.enable_acks = acks_were
        stream._processors.remove(add_to_batch)
