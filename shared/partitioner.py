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
from collections.abc import Iterable, Sequence

import numpy as np
from kafka.partitioner.default import murmur2

_SEED, _M = 0x9747B28C, 0x5BD1E995


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition (0-based, of ``partitions``) that Java, librdkafka's murmur2 and kafka-python send ``key`` to."""
    raw = key.encode() if isinstance(key, str) else key
    return (murmur2(raw) & 0x7FFFFFFF) % partitions


def partitions_of(keys: Sequence[str], partitions: int) -> np.ndarray:
    """:func:`partition_of` of many keys at once: the same murmur2, column-wise over keys of equal length.

    Why: the bootstrap places a million customers, and murmur2 in Python costs
    about 10 µs a key.
    """
    out = np.zeros(len(keys), dtype=np.int64)
    encoded = [key.encode() for key in keys]
    lengths = np.fromiter((len(raw) for raw in encoded), dtype=np.int64, count=len(encoded))
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        data = np.frombuffer(b"".join(encoded[row] for row in rows.tolist()), dtype=np.uint8).reshape(len(rows), length)
        hashes = _murmur2_rows(data.astype(np.uint64))
        out[rows] = (hashes & 0x7FFFFFFF) % partitions
    return out


def _murmur2_rows(data: np.ndarray) -> np.ndarray:
    """Kafka's murmur2 of each row of bytes (one length), in 64-bit integers masked to 32 bits."""
    mask = np.uint64(0xFFFFFFFF)
    m = np.uint64(_M)
    length = data.shape[1]
    h = np.full(len(data), (_SEED ^ length) & 0xFFFFFFFF, dtype=np.uint64)
    for i in range(length // 4):
        block = data[:, 4 * i : 4 * i + 4]
        k = (
            block[:, 0]
            | (block[:, 1] << np.uint64(8))
            | (block[:, 2] << np.uint64(16))
            | (block[:, 3] << np.uint64(24))
        )
        k = (k * m) & mask
        k ^= k >> np.uint64(24)
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length & ~3
    extra = length % 4
    if extra >= 3:
        h ^= data[:, tail + 2] << np.uint64(16)
    if extra >= 2:
        h ^= data[:, tail + 1] << np.uint64(8)
    if extra >= 1:
        h ^= data[:, tail]
        h = (h * m) & mask
    h ^= h >> np.uint64(13)
    h = (h * m) & mask
    h ^= h >> np.uint64(15)
    return h


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
