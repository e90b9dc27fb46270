"""Segment sizes of the customers a worker owns, read at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from worker.observability.metrics import SegmentSizes

STATES = ("assigned", "published")


def segment_sizes(names: Mapping[int, str], assigned: np.ndarray, published: np.ndarray) -> SegmentSizes:
    """Customers per segment, by assigned (nearest centroid) and by published segment id (-1: none yet).

    Every segment of the model is reported, with 0 when empty; customers not
    scored yet count as segment ``none``, so each state sums to the customers owned.
    """
    sizes: Counter[tuple[str, str, str]] = Counter(
        {(str(segment), name, state): 0 for segment, name in names.items() for state in STATES}
    )
    for state, ids in zip(STATES, (assigned, published), strict=True):
        values, counts = np.unique(ids, return_counts=True)
        for segment, count in zip(values.tolist(), counts.tolist(), strict=True):
            if segment < 0:
                sizes["none", "unscored", state] += count
            else:
                sizes[str(segment), names.get(segment, "unknown"), state] += count
    return sizes
