"""The rule that assigns a customer to a segment: its nearest centroid in scaled feature space.

>>> import numpy as np
>>> nearest_centroid(np.array([[0.0, 0.1], [2.0, 2.1]]), np.array([[2.0, 2.0], [0.0, 0.0]])).tolist()
[1, 0]
"""

from __future__ import annotations

import numpy as np


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the closest centroid per row (ties: the lower index)."""
    distances = ((vectors[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)
