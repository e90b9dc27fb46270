"""Model statistics in Redis: per-segment member count and vector sum.

The bootstrap writes them for the whole model (``model:stats``); each worker
writes them whole for every partition it owns (``model:stats:p{n}``), so the
live centroids are the sums over all partitions divided by the counts. Fields:
``count:{segment}`` and ``sum:{segment}:{dimension}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import redis

from shared.state_keys import Keys


def count_field(segment: int) -> str:
    return f"count:{segment}"


def sum_field(segment: int, dimension: int) -> str:
    return f"sum:{segment}:{dimension}"


def stats_mapping(segment_ids: Iterable[int], sums: np.ndarray, counts: np.ndarray) -> dict[str, str]:
    """Hash fields for whole statistics (used when a model is published or rebuilt)."""
    mapping: dict[str, str] = {}
    for row, segment in enumerate(segment_ids):
        mapping[count_field(segment)] = str(int(counts[row]))
        for dimension, value in enumerate(sums[row]):
            mapping[sum_field(segment, dimension)] = repr(float(value))
    return mapping


def parse_stats(raw: Mapping[str, str], segment_ids: list[int], dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums (k × d) and counts (k) in the order of ``segment_ids``; absent fields read as 0."""
    sums = np.zeros((len(segment_ids), dimensions))
    counts = np.zeros(len(segment_ids))
    for row, segment in enumerate(segment_ids):
        counts[row] = float(raw.get(count_field(segment), 0))
        for dimension in range(dimensions):
            sums[row, dimension] = float(raw.get(sum_field(segment, dimension), 0.0))
    return sums, counts


def live_stats(
    client: redis.Redis, keys: Keys, segment_ids: list[int], dimensions: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of the live model: all partitions' statistics added up.

    Before any worker has written its partitions, the bootstrap's ``model:stats``.
    """
    partition_keys = sorted(client.scan_iter(match=keys.partition_stats_pattern, count=1000))
    if not partition_keys:
        return parse_stats(client.hgetall(keys.model_stats), segment_ids, dimensions)
    pipe = client.pipeline(transaction=False)
    for key in partition_keys:
        pipe.hgetall(key)
    parts = [parse_stats(raw, segment_ids, dimensions) for raw in pipe.execute()]
    return sum(s for s, _ in parts), sum(c for _, c in parts)
