"""The rule that assigns a customer to a segment: its nearest centroid in scaled feature space.

Why two ways to measure: a matrix product (BLAS) is fast, but its rounding can
depend on the shape of the call, so a customer's distances could differ in the
last bits depending on which other customers were scored with it. The worker must
publish the same bytes however its input was batched, so every value it reports
comes from :func:`distances_exact` (a fixed sum per row), and the fast product only
decides where the nearest centroid is clearly nearest.

>>> import numpy as np
>>> nearest_centroid(np.array([[0.0, 0.1], [2.0, 2.1]]), np.array([[2.0, 2.0], [0.0, 0.0]])).tolist()
[1, 0]
"""

from __future__ import annotations

import numpy as np

# Relative gap between the two nearest squared distances below which the fast
# product's rounding could decide; those rows are measured exactly.
_TIE = 1e-9


def squared_exact(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared distances of each row to each centroid, summed over dimensions in a fixed order."""
    out = np.zeros((len(vectors), len(centroids)))
    for dimension in range(vectors.shape[1]):
        out += (vectors[:, dimension, None] - centroids[None, :, dimension]) ** 2
    return out


def distances_exact(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Euclidean distances, bit-identical for a row whatever else is in ``vectors``."""
    return np.sqrt(squared_exact(vectors, centroids))


def distance_to(vectors: np.ndarray, centroids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Exact distance of each vector to one centroid each (``rows`` index ``centroids``)."""
    picked = centroids[rows]
    total = np.zeros(len(vectors))
    for dimension in range(vectors.shape[1]):
        total += (vectors[:, dimension] - picked[:, dimension]) ** 2
    return np.sqrt(total)


def nearest_centroid(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the closest centroid per row (ties: the lower index), independent of batching."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    squared = (
        np.einsum("ij,ij->i", vectors, vectors)[:, None]
        - 2.0 * vectors @ centroids.T
        + np.einsum("ij,ij->i", centroids, centroids)[None, :]
    )
    nearest = squared.argmin(axis=1)
    if len(centroids) > 1:
        ordered = np.partition(squared, 1, axis=1)
        close = ordered[:, 1] - ordered[:, 0] <= _TIE * (1.0 + np.abs(ordered[:, 0]))
        if close.any():
            nearest[close] = squared_exact(vectors[close], centroids).argmin(axis=1)
    return nearest
