"""Live model statistics in Redis: per-segment member count and vector sum.

Why a Redis hash with one field per number: workers update it with
``HINCRBY``/``HINCRBYFLOAT`` inside their batch commit, so concurrent workers
add their deltas without locks and the centroids are always sum / count of the
vectors the customers are stored with. Fields: ``count:{segment}`` and
``sum:{segment}:{dimension}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


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
