"""Group a batch's rows by key columns with numpy: one sort, then the runs of equal keys.

>>> import numpy as np
>>> [rows.tolist() for rows in groups(np.array([1, 0, 1, 0]), np.array([5, 5, 5, 6]))]
[[1], [3], [0, 2]]
"""

from __future__ import annotations

import itertools

import numpy as np


def groups(*columns: np.ndarray) -> list[np.ndarray]:
    """Row indices per distinct key (the first column most significant), keys ascending, rows in order."""
    if not len(columns[0]):
        return []
    order = np.lexsort(columns[::-1])
    change = np.zeros(len(order) - 1, dtype=bool)
    for column in columns:
        change |= np.diff(column[order]) != 0
    bounds = np.flatnonzero(np.r_[True, change, True])
    return [order[start:end] for start, end in itertools.pairwise(bounds)]
