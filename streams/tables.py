"""The key schemes of catalogflow's tables: which partition a row lives on.

Every table names its key scheme, and both the changelog and the RocksDB store place a
row by its key (not by the event being processed, as faust would: see
:class:`catalogflow.streams.faust_workarounds.KeyPartitionedTable`):

* ``sku``: the key is a SKU (``products``);
* ``task``: ``<sku>@<rest>`` — task ids, cache keys — placed with their product;
* ``run``: a run id, placed as Kafka places the run-id-keyed ``run-progress``;
* ``copy``: ``<run id>#<partition>`` — one copy per partition, read by the agents of
  that partition (``run-controls``).
"""

from __future__ import annotations

from typing import Literal

from catalogflow.streams.partitioner import partition_for

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
