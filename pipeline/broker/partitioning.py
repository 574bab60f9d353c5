"""Kafka's default partitioning, so the core knows which partition a key lives in.

Every Kafka producer (Java's and aiokafka's default partitioner alike) places
a keyed record in ``murmur2(key) & 0x7fffffff % partitions``. State that
belongs to a partition rather than to a key (peer baselines, group models) is
stored under a key chosen to hash to that partition, so the worker that owns
the partition recovers it from the changelog.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key``.

    >>> partition_for(b"S01", 4)
    0
    """
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


@lru_cache(maxsize=4096)
def key_for_partition(name: str, partition: int, partitions: int) -> str:
    """A key of the form ``__{name}__/{partition}/{salt}`` that hashes to ``partition``.

    >>> k = key_for_partition("peers", 3, 8)
    >>> partition_for(k.encode(), 8)
    3
    """
    salt = 0
    while True:
        key = f"__{name}__/{partition}/{salt}"
        if partition_for(key.encode(), partitions) == partition:
            return key
        salt += 1
