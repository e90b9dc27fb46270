"""Incremental k-means over moving customers: a few Lloyd steps per event day, whoever owns the partitions.

Customers move in feature space even without events (recency and tenure grow
every day), so at each event-day boundary every customer is moved to its vector
at that midnight and assigned to the nearest centroids of the pass before (the
first pass: the centroids in force during the day before). Each partition's
statistics (member counts and fixed-point vector sums) then follow from its own
customers alone, and the next centroids are the mean over *all* partitions'
statistics: :func:`day_step` is one Lloyd iteration, and the worker runs
``SEG_WORKER_SWEEP_PASSES`` of them per midnight
(:mod:`worker.segmentation.sweep_ticks`). Nothing in it depends on which worker
owns which partition, so one worker and three workers compute the same
centroids, and the same published segments (README, "Event time").

>>> import numpy as np
>>> vectors = np.array([[0.0], [0.2], [5.0], [5.2]])
>>> step = day_step(vectors, np.array([0, 0, 1, 1]), [0, 1], np.array([[0.0], [4.0]]))
>>> step.rows.tolist(), step.own[1].counts.tolist()
([0, 0, 1, 1], [0, 2])
>>> total = step.own[0] + step.own[1]
>>> total.centroids(np.zeros((2, 1))).ravel().round(2).tolist()
[0.1, 5.1]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.state.model_stats import Statistics, to_fixed
from worker.segmentation.assignment import nearest_centroid


@dataclass
class DayStep:
    rows: np.ndarray  # centroid row of each customer at the boundary
    own: dict[int, Statistics]  # statistics of each owned partition at the boundary


def partition_statistics(
    fixed: np.ndarray, rows: np.ndarray, partition: np.ndarray, owned: list[int], k: int
) -> dict[int, Statistics]:
    """Counts and fixed-point sums per owned partition (integer sums: order does not matter)."""
    slot = np.full(int(partition.max(initial=0)) + 1, -1, dtype=np.int64)
    slot[owned] = np.arange(len(owned))
    cell_slot = slot[partition]
    member = (cell_slot >= 0) & (rows >= 0)
    cell = cell_slot[member] * k + rows[member]
    counts = np.bincount(cell, minlength=len(owned) * k).astype(np.int64)
    sums = np.zeros((len(owned) * k, fixed.shape[1]), dtype=np.int64)
    if len(cell):  # sorted runs summed at once (np.add.at is an unbuffered loop, many times slower)
        order = np.argsort(cell, kind="stable")
        cells, starts = np.unique(cell[order], return_index=True)
        sums[cells] = np.add.reduceat(fixed[member][order], starts, axis=0)
    return {
        p: Statistics(counts[i * k : (i + 1) * k].copy(), sums[i * k : (i + 1) * k].copy()) for i, p in enumerate(owned)
    }


def day_step(vectors: np.ndarray, partition: np.ndarray, owned: list[int], centroids: np.ndarray) -> DayStep:
    """Assign ``vectors`` (each customer at the boundary) to ``centroids`` and count them per owned partition."""
    rows = nearest_centroid(vectors, centroids) if len(vectors) else np.zeros(0, dtype=np.int64)
    return DayStep(rows, partition_statistics(to_fixed(vectors), rows, partition, owned, len(centroids)))
