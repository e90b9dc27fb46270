"""Which new cluster inherits which old segment id: a minimum-cost one-to-one matching.

Why Hungarian matching and a threshold: consumers key on segment ids, so a
refit must not relabel segments that are still there. Pairing each new centroid
with the nearest old one greedily can give two new clusters the same id;
``linear_sum_assignment`` finds the pairing of least total distance instead.
A pair farther apart than the threshold is not the same segment: the new
cluster gets a fresh id and the old id is retired (never reused).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist


def match_centroids(new: np.ndarray, old: np.ndarray, threshold: float) -> dict[int, int | None]:
    """Row of ``old`` matched to each row of ``new``, or None where no old centroid is close enough.

    >>> match_centroids(np.array([[5.0, 5.0], [0.1, 0.0]]), np.array([[0.0, 0.0], [1.0, 1.0]]), 2.0)
    {0: None, 1: 0}
    """
    cost = cdist(new, old)
    rows, columns = linear_sum_assignment(cost)
    matched: dict[int, int | None] = {row: None for row in range(len(new))}
    for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
        if cost[row, column] <= threshold:
            matched[row] = column
    return matched
