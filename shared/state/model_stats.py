"""Model statistics in Redis: per-segment member count and vector sum.

The bootstrap writes them for the whole model (``model:stats``); each worker
writes them whole for every partition it owns (``model:stats:p{n}``), so the
live centroids are the sums over all partitions divided by the counts. Fields:
``count:{segment}`` and ``sum:{segment}:{dimension}``; a partition's hash also
carries the model ``version`` it was computed under.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import redis

from shared.contracts.model_snapshot import ModelSnapshot
from shared.state.keys import Keys

VERSION_FIELD = "version"


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


def live_stats(client: redis.Redis, keys: Keys, snapshot: ModelSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of the live model (rows in ``snapshot.segments`` order): all partitions added up.

    Only partitions already scored under ``snapshot``'s version count; before any
    worker has written its partitions under it, the model's own ``model:stats``.
    """
    segment_ids = [segment.id for segment in snapshot.segments]
    dimensions = len(snapshot.feature_names)
    partition_keys = sorted(client.scan_iter(match=keys.partition_stats_pattern, count=1000))
    pipe = client.pipeline(transaction=False)
    for key in partition_keys:
        pipe.hgetall(key)
    version = str(snapshot.version)
    parts = [
        parse_stats(raw, segment_ids, dimensions)
        for raw in pipe.execute()
        if raw.get(VERSION_FIELD, version) == version
    ]
    if not parts:
        return parse_stats(client.hgetall(keys.model_stats), segment_ids, dimensions)
    return np.sum([s for s, _ in parts], axis=0), np.sum([c for _, c in parts], axis=0)
