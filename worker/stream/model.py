"""The worker's copy of the live model: centroids from per-partition statistics.

Why per partition: a worker is the only writer of its partitions, so it keeps
their member counts and vector sums in memory, recomputes them from its
customers' current vectors at every sweep (no float drift, no stale vectors) and
writes them whole in its batch commit. Other partitions' statistics ride in the
batch's read pipeline. Centroid = sum over all partitions / count over all
partitions, so every worker sees one model. Until every partition has written
its statistics once, the bootstrap's global ``model:stats`` stands in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from shared.contracts.model_snapshot import ModelSnapshot
from shared.features.scaling import transform_matrix
from shared.features.vector import FEATURE_NAMES
from shared.state.model_stats import VERSION_FIELD, parse_stats, stats_mapping

AS_OF_FIELD = "as_of"


class LocalModel:
    """Nearest-centroid scoring plus the statistics that move the centroids."""

    def __init__(self, snapshot: ModelSnapshot) -> None:
        self.snapshot = snapshot
        self.version = snapshot.version
        self.segment_ids = [segment.id for segment in snapshot.segments]
        self.names = {segment.id: segment.name for segment in snapshot.segments}
        self.row_of = {segment_id: row for row, segment_id in enumerate(self.segment_ids)}
        self.k = len(self.segment_ids)
        self.dimensions = len(FEATURE_NAMES)
        self.initial = np.array([segment.centroid for segment in snapshot.segments])
        self.global_sums = np.array([segment.sum for segment in snapshot.segments])
        self.global_counts = np.array([float(segment.count) for segment in snapshot.segments])
        self.own: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.remote: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.partition_count = 0
        self.centroids = self.initial.copy()
        self.recentre()

    # -- scoring ----------------------------------------------------------------------------
    def vectors(self, raw: np.ndarray) -> np.ndarray:
        """Scaled vectors of raw feature rows (columns in :data:`FEATURE_NAMES` order)."""
        return transform_matrix(raw, self.snapshot.transform)

    def distances(self, vectors: np.ndarray) -> np.ndarray:
        """Euclidean distance of each vector (rows) to each centroid (columns).

        As |x|² - 2x·c + |c|² (one matrix product): a sweep runs this over every
        owned customer several times a day of events.
        """
        centroids = self.centroids
        squared = (
            np.einsum("ij,ij->i", vectors, vectors)[:, None]
            - 2.0 * vectors @ centroids.T
            + np.einsum("ij,ij->i", centroids, centroids)[None, :]
        )
        return np.sqrt(np.maximum(squared, 0.0))

    # -- statistics -----------------------------------------------------------------------
    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((self.k, self.dimensions)), np.zeros(self.k)

    def recentre(self) -> None:
        """Centroids from the statistics of every partition (or the bootstrap's, until complete)."""
        parts = {**self.remote, **self.own}
        if self.partition_count and len(parts) >= self.partition_count:
            sums = sum((s for s, _ in parts.values()), np.zeros((self.k, self.dimensions)))
            counts = sum((c for _, c in parts.values()), np.zeros(self.k))
        else:
            sums, counts = self.global_sums, self.global_counts
        filled = counts > 0
        self.centroids = self.initial.copy()
        self.centroids[filled] = sums[filled] / counts[filled, None]

    def load_global(self, raw: Mapping[str, str]) -> None:
        """The bootstrap's ``model:stats`` (used until every partition has its own)."""
        if raw:
            self.global_sums, self.global_counts = parse_stats(raw, self.segment_ids, self.dimensions)

    def load_remote(self, raw_by_partition: Mapping[int, Mapping[str, str]]) -> None:
        """Statistics of partitions other workers own, read in the batch pipeline."""
        self.remote = {
            partition: parse_stats(raw, self.segment_ids, self.dimensions)
            for partition, raw in raw_by_partition.items()
            if raw and partition not in self.own and raw.get(VERSION_FIELD, str(self.version)) == str(self.version)
        }
        self.recentre()

    def set_own(self, partition: int, sums: np.ndarray, counts: np.ndarray) -> None:
        """Adopt recomputed statistics of an owned partition (rows in ``segment_ids`` order)."""
        self.own[partition] = (sums, counts)

    def release(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.own.pop(partition, None)

    def move(
        self, partition: int, old: int | None, old_vector: np.ndarray | None, new: int, new_vector: np.ndarray
    ) -> None:
        """Count a customer at its new vector: out of ``old`` (if any), into ``new``."""
        sums, counts = self.own.setdefault(partition, self._empty())
        if old is not None and old_vector is not None and old in self.row_of:
            sums[self.row_of[old]] -= old_vector
            counts[self.row_of[old]] -= 1
        sums[self.row_of[new]] += new_vector
        counts[self.row_of[new]] += 1

    def stats_fields(self, partition: int, as_of: str) -> dict[str, str]:
        """The ``model:stats:p{n}`` hash of an owned partition, with its sweep marker and model version.

        Another worker's statistics count only under the same model version: while
        workers switch to a new version, the bootstrap's or refit's global
        statistics stand in.
        """
        sums, counts = self.own.get(partition, self._empty())
        return stats_mapping(self.segment_ids, sums, counts) | {AS_OF_FIELD: as_of, VERSION_FIELD: str(self.version)}
