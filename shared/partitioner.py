"""Key -> partition, the way Kafka's default partitioners place a keyed record (murmur2).

Why one module: the producer places customers with it, the worker loads exactly the
customers of the partitions it owns with it, and the tools read one customer's
partition with it. If two copies of the formula drifted apart, a worker would load
the wrong customers; so there is one.

>>> partition_of("17850", 6)
1
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from kafka.partitioner.default import murmur2


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition (0-based, of ``partitions``) that Java, librdkafka's murmur2 and kafka-python send ``key`` to."""
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


class KeyPartitioner:
    """Maps a serialised key to its partition among ``partitions`` (fixed for the run), with a bounded cache.

    Why a cache: kafka-python hashes every key in pure Python; customers repeat
    thousands of times in a replay, so each key is hashed once while it is recent.
    """

    def __init__(self, partitions: Iterable[int], cache_size: int = 1 << 20) -> None:
        self.partitions = sorted(partitions)
        if not self.partitions:
            raise ValueError("the topic has no partitions")
        self._lookup = functools.lru_cache(maxsize=cache_size)(self._place)

    def _place(self, key: bytes) -> int:
        return self.partitions[partition_of(key, len(self.partitions))]

    def __call__(self, key: bytes) -> int:
        return self._lookup(key)
