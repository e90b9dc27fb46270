"""The live model as the worker uses it: segment ids, names, the feature transform and centroids.

Segments are referred to by id (stable across refreshes, what consumers see) and
by row (their position in the snapshot, what arrays are indexed by).
:meth:`SegmentModel.rows` maps ids to rows; an id the model does not hold (a
segment retired by a refresh) maps to -1.
"""

from __future__ import annotations

import numpy as np

from shared.contracts.model_snapshot import ModelSnapshot
from shared.features.scaling import transform_matrix
from shared.features.vector import FEATURE_NAMES
from shared.state.model_stats import Statistics

NO_SEGMENT = -1


class SegmentModel:
    """One model version and the centroids currently in force."""

    def __init__(self, snapshot: ModelSnapshot) -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self.segment_ids = np.array([segment.id for segment in snapshot.segments], dtype=np.int64)
        self.names = {segment.id: segment.name for segment in snapshot.segments}
        self.k = len(self.segment_ids)
        self.dimensions = len(FEATURE_NAMES)
        self.initial = np.array([segment.centroid for segment in snapshot.segments], dtype=float)
        self.centroids = self.initial.copy()
        self._row_of = np.full(int(self.segment_ids.max()) + 2, NO_SEGMENT, dtype=np.int64)
        self._row_of[self.segment_ids] = np.arange(self.k)

    def vectors(self, features: np.ndarray) -> np.ndarray:
        """Scaled vectors of raw feature rows (columns in :data:`FEATURE_NAMES` order)."""
        return transform_matrix(features, self.snapshot.transform)

    def rows(self, segment_ids: np.ndarray) -> np.ndarray:
        """Row of each segment id (-1 for no segment or one this model does not hold)."""
        ids = np.asarray(segment_ids, dtype=np.int64)
        known = (ids >= 0) & (ids < len(self._row_of))
        out = np.full(ids.shape, NO_SEGMENT, dtype=np.int64)
        out[known] = self._row_of[ids[known]]
        return out

    def ids(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return np.where(rows >= 0, self.segment_ids[np.maximum(rows, 0)], NO_SEGMENT)

    def set_statistics(self, stats: Statistics) -> None:
        """Centroids from ``stats``; a segment without members keeps its snapshot centroid."""
        self.centroids = stats.centroids(self.initial)

    def empty_statistics(self) -> Statistics:
        return Statistics.empty(self.k, self.dimensions)

    def name(self, segment_id: int, fallback: dict[int, str] | None = None) -> str:
        return self.names.get(segment_id) or (fallback or {}).get(segment_id, "")
