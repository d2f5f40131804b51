"""Which partition a key lands on: Kafka's Java partitioner (murmur2), which aiokafka,
faust and our confluent-kafka producers (``murmur2_random``) all use. Agents that scan
a table for "the rows of my partition" rely on it."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: str, partitions: int) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions
