"""The worker's local copy of the live model: centroids from the shared statistics.

Why local: assigning a customer is a numpy argmin that must not cost a round
trip. The copy is refreshed from ``model:stats`` at every batch (it rides in the
batch's read pipeline), so several workers share one consistent model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from shared.contracts.model_snapshot import ModelSnapshot
from shared.features.scaling import transform_matrix
from shared.features.vector import FEATURE_NAMES
from shared.model_stats import count_field, parse_stats, sum_field


class LocalModel:
    """Centroids = sums / counts; segments with no member keep their snapshot centroid."""

    def __init__(self, snapshot: ModelSnapshot) -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self.segment_ids = [segment.id for segment in snapshot.segments]
        self.names = {segment.id: segment.name for segment in snapshot.segments}
        self.row_of = {segment_id: row for row, segment_id in enumerate(self.segment_ids)}
        self.initial = np.array([segment.centroid for segment in snapshot.segments])
        self.sums = np.array([segment.sum for segment in snapshot.segments])
        self.counts = np.array([float(segment.count) for segment in snapshot.segments])
        self.centroids = self.initial.copy()
        self._recentre()

    def _recentre(self) -> None:
        filled = self.counts > 0
        self.centroids[filled] = self.sums[filled] / self.counts[filled, None]
        self.centroids[~filled] = self.initial[~filled]

    def load_stats(self, raw: Mapping[str, str]) -> None:
        """Adopt the shared statistics read from Redis."""
        if raw:
            self.sums, self.counts = parse_stats(raw, self.segment_ids, len(FEATURE_NAMES))
            self._recentre()

    def vectors(self, raw: np.ndarray) -> np.ndarray:
        """Scaled vectors of raw feature rows (columns in :data:`FEATURE_NAMES` order)."""
        return transform_matrix(raw, self.snapshot.transform)

    def distances(self, vectors: np.ndarray) -> np.ndarray:
        """Euclidean distance of each vector (rows) to each centroid (columns)."""
        diff = vectors[:, None, :] - self.centroids[None, :, :]
        return np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))

    def move(
        self,
        old: int | None,
        old_vector: np.ndarray | None,
        new: int,
        new_vector: np.ndarray,
        deltas_int: dict[str, int],
        deltas_float: dict[str, float],
    ) -> None:
        """Count a customer at its new vector: out of ``old`` (if any), into ``new``.

        Updates the local centroids at once and records the same deltas for the
        batch's atomic commit.
        """
        if old is not None and old_vector is not None:
            self._add(old, old_vector, -1, deltas_int, deltas_float)
        self._add(new, new_vector, +1, deltas_int, deltas_float)

    def _add(
        self, segment: int, vector: np.ndarray, sign: int, deltas_int: dict[str, int], deltas_float: dict[str, float]
    ) -> None:
        row = self.row_of[segment]
        self.counts[row] += sign
        self.sums[row] += sign * vector
        name = count_field(segment)
        deltas_int[name] = deltas_int.get(name, 0) + sign
        for dimension, value in enumerate(vector):
            name = sum_field(segment, dimension)
            deltas_float[name] = deltas_float.get(name, 0.0) + sign * float(value)

    def recentre(self) -> None:
        """Recompute centroids after a batch of moves."""
        self._recentre()
