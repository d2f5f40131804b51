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
