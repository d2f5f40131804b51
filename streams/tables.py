"""Tables whose rows live on a partition derived from their key.

faust puts a row on the partition of the event being processed — in the changelog,
and in RocksDB, where it also *reads* only that partition's database. Agents that
work on a batch (``take_events``) have no single current event, and some rows are
read by agents of other topics. So every catalogflow table names its key scheme, and
both the changelog and the RocksDB store place a row by its key:

* ``sku``: the key is a SKU (``products``);
* ``task``: ``<sku>@<rest>`` — task ids, cache keys — placed with their product;
* ``run``: a run id, placed as Kafka places the run-id-keyed ``run-progress``;
* ``copy``: ``<run id>#<partition>`` — one copy per partition, read by the agents of
  that partition (``run-controls``).
"""

from __future__ import annotations

from typing import Any, Literal

import faust
from catalogflow.streams.partitioner import partition_for
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery

KeyScheme = Literal["sku", "task", "run", "copy"]


def sku_of(key: str) -> str:
    return key.rsplit("@", 1)[0]


def copy_key(run_id: str, partition: int) -> str:
    return f"{run_id}#{partition}"


def key_partition(scheme: KeyScheme, key: str, partitions: int) -> int:
    if scheme == "copy":
        return int(key.rsplit("#", 1)[1])
    if scheme == "task":
        return partition_for(sku_of(key), partitions)
    return partition_for(key, partitions)


class KeyPartitionedTable(faust.Table[str, Any]):
    """A faust table that places each row by its key (see the module docstring)."""

    key_scheme: KeyScheme = "sku"

    def partition_of(self, key: str) -> int:
        return key_partition(self.key_scheme, key, self.partitions or 1)

    def partition_for_key(self, key: Any) -> int:
        return self.partition_of(str(key))

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
    instead of the current event's."""

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


class CatalogflowRecovery(Recovery):
    """faust's table recovery, with the hand-over to the streams made race-free.

    After the changelogs are read, faust's ``Recovery.on_recovery_completed`` resumes
    the stream partitions, awaits ``perform_seek()`` (a round trip for the committed
    offsets), and only then calls ``flow_control.resume()``, which *clears every
    channel queue*. The flow is still on from reading the changelogs, and aiokafka has
    already prefetched the stream partitions from their committed offsets (faust
    pauses partitions only in its own bookkeeping, not in aiokafka). So during the
    seek the fetcher delivers those records into the agents' queues, and the clear
    then throws away the ones no agent has taken yet. Records fetched before the seek
    are fetched again; records fetched after it are not: aiokafka's position is
    already past them. Their tasks never run, and the partition's commit stays below
    the first of them until the worker is restarted (faust-streaming issue 596, "bug
    C" in docs/crash-test.md; faust-streaming master has the same code).

    So stop the flow first, as faust itself does before a rebalance. With the flow
    stopped the fetcher returns nothing, and a record on its way to a queue is dropped
    (``getmany`` stops iterating, the drain loop's ``wait_first`` gives up on it), so
    nothing reaches a queue between resuming the stream partitions and the clear. The
    seek rewinds whatever was fetched before, the clear only empties stale events, and
    the ``resume_flow()`` at the end of faust's method starts delivery at the
    committed offsets, in order.

    If faust returns early (a newer rebalance started), the flow stays stopped, as
    after a revoke; the next recovery resumes it.
    """

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.app.consumer.stop_flow()
        self.app.flow_control.suspend()
        await super().on_recovery_completed(generation_id)


class CatalogflowTableManager(TableManager):
    """faust's table manager with :class:`CatalogflowRecovery` (set as the app's
    ``TableManager``)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = CatalogflowRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
