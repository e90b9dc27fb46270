"""Incremental k-means over moving customers: the daily Lloyd sweep.

Customers move in feature space even without events (recency and tenure grow
every day), so once per event day every customer a worker owns is moved to that
day's vector and the model is re-fitted from where it stands: up to ``passes``
Lloyd iterations (assign each customer to its nearest centroid, recompute the
centroids from the members), stopping when nothing moves. Each customer counts
once, at its current vector, in its partition's statistics; the centroids are
the sum over all partitions (other workers' partitions enter as ``remote``).

Between sweeps the centroids stay fixed, so every decision of one event day
uses the model as of the end of the previous day (see README, "Event time").

>>> import numpy as np
>>> vectors = np.array([[0.0], [0.2], [5.0], [5.2]])
>>> result = sweep(vectors, np.array([0, 0, 0, 1]), np.zeros(4, dtype=int), [0], None,
...                np.array([[0.0], [5.0]]), passes=5)
>>> result.rows.tolist(), result.centroids.ravel().round(2).tolist(), result.moves
([0, 0, 1, 1], [0.1, 5.1], 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.state.model_stats import Statistics, to_fixed
from worker.segmentation.assignment import nearest_centroid


@dataclass
class SweepResult:
    rows: np.ndarray  # centroid row of each customer after the sweep
    own: dict[int, Statistics]  # statistics of each owned partition
    centroids: np.ndarray
    moves: int  # customers that changed rows, summed over passes


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


def combined(own: dict[int, Statistics], remote: Statistics | None, fallback: Statistics | None) -> Statistics | None:
    """All partitions' statistics, or ``fallback`` while some partition has none yet (``remote`` None)."""
    if remote is None:
        return fallback
    total = remote
    for stats in own.values():
        total = total + stats
    return total


def sweep(
    vectors: np.ndarray,
    rows: np.ndarray,
    partition: np.ndarray,
    owned: list[int],
    remote: Statistics | None,
    initial: np.ndarray,
    passes: int,
    fallback: Statistics | None = None,
) -> SweepResult:
    """Lloyd passes from the current assignment ``rows`` (-1: not counted) over the owned customers.

    ``remote`` is the sum of the other partitions' statistics (None while one of
    them has none yet: then ``fallback``, the model's own statistics, sets the
    centroids and only the owned partitions' statistics are recomputed).
    """
    k = len(initial)
    fixed = to_fixed(vectors)
    rows = rows.copy()
    moves = 0
    for step in range(passes + 1):
        own = partition_statistics(fixed, rows, partition, owned, k)
        total = combined(own, remote, fallback)
        centroids = total.centroids(initial) if total is not None else initial.copy()
        if step == passes or not len(vectors):
            break
        nearest = nearest_centroid(vectors, centroids)
        moved = (nearest != rows) & (rows >= 0)
        if not moved.any():
            break
        moves += int(moved.sum())
        rows = np.where(rows >= 0, nearest, rows)
    return SweepResult(rows=rows, own=own, centroids=centroids, moves=moves)
