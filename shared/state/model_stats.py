"""Model statistics: per segment, the member count and the sum of member vectors, in fixed point.

Why fixed point: the centroids are sums over many customers, and float sums
depend on the order of the terms. A worker that reloads its customers after a
crash holds them in another order than before; with integer sums (vectors rounded
to multiples of ``2**-FRACTION_BITS``, about 1e-9) the centroids are bit-identical
whatever the order, so a replay publishes the same bytes.

Each partition's statistics are written whole by the worker that owns it, at
every daily sweep: the latest in ``{pn}:stats``, and those of the last midnights in
``{pn}:stats:{day}``, from which every worker computes the centroids of a day
(worker/segmentation/kmeans.py). The live centroids are the sum over all
partitions divided by the counts. Until every partition has written its own, the
bootstrap's (or a refit's) ``{model}:stats`` stand in.

>>> import numpy as np
>>> stats = Statistics.of(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 0]), k=2)
>>> stats.centroids(np.zeros((2, 2))).tolist()
[[2.0, 3.0], [0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import redis

from shared.contracts.model_snapshot import ModelSnapshot
from shared.state.keys import Keys
from shared.state.layout import partition_count

FRACTION_BITS = 30
_SCALE = float(1 << FRACTION_BITS)
VERSION_FIELD = "version"
AS_OF_FIELD = "as_of"


def to_fixed(vectors: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(vectors) * _SCALE).astype(np.int64)


@dataclass
class Statistics:
    """Counts (k) and fixed-point vector sums (k × d), rows in the model's segment order."""

    counts: np.ndarray
    sums: np.ndarray

    @classmethod
    def empty(cls, k: int, dimensions: int) -> Statistics:
        return cls(np.zeros(k, dtype=np.int64), np.zeros((k, dimensions), dtype=np.int64))

    @classmethod
    def of(cls, vectors: np.ndarray, rows: np.ndarray, k: int) -> Statistics:
        """The statistics of members ``vectors`` assigned to centroid ``rows`` (-1: counted nowhere)."""
        fixed = to_fixed(vectors)
        counts = np.bincount(rows[rows >= 0], minlength=k).astype(np.int64)
        sums = np.zeros((k, fixed.shape[1] if fixed.ndim == 2 else 0), dtype=np.int64)
        for row in range(k):
            members = rows == row
            if members.any():
                sums[row] = fixed[members].sum(axis=0)
        return cls(counts, sums)

    def __add__(self, other: Statistics) -> Statistics:
        return Statistics(self.counts + other.counts, self.sums + other.sums)

    def centroids(self, fallback: np.ndarray) -> np.ndarray:
        """Mean member vector per segment; an empty segment keeps ``fallback`` (its snapshot centroid)."""
        out = fallback.astype(float).copy()
        filled = self.counts > 0
        out[filled] = self.sums[filled] / _SCALE / self.counts[filled, None]
        return out

    # -- Redis hash form ----------------------------------------------------------------------
    def to_mapping(self, segment_ids: Iterable[int]) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for row, segment in enumerate(segment_ids):
            mapping[f"count:{segment}"] = str(int(self.counts[row]))
            for dimension, value in enumerate(self.sums[row]):
                mapping[f"sum:{segment}:{dimension}"] = str(int(value))
        return mapping

    @classmethod
    def from_mapping(cls, raw: Mapping[str, str], segment_ids: list[int], dimensions: int) -> Statistics:
        """Parse a stats hash; absent fields read as 0."""
        stats = cls.empty(len(segment_ids), dimensions)
        for row, segment in enumerate(segment_ids):
            stats.counts[row] = int(raw.get(f"count:{segment}", 0))
            for dimension in range(dimensions):
                stats.sums[row, dimension] = int(raw.get(f"sum:{segment}:{dimension}", 0))
        return stats


@dataclass(frozen=True)
class DayStatistics:
    """A partition's statistics at one midnight (``{pn}:stats:{day}``) and the model version that counted them."""

    version: int
    stats: Statistics

    @classmethod
    def parse(cls, raw: Mapping[str, str], segment_ids: list[int], dimensions: int, version: int) -> DayStatistics:
        """Parsed when counted under ``version`` (another version's segments are not these: empty)."""
        counted = int(raw.get(VERSION_FIELD, -1))
        if counted != version:
            return cls(counted, Statistics.empty(len(segment_ids), dimensions))
        return cls(counted, Statistics.from_mapping(raw, segment_ids, dimensions))


def live_stats(client: redis.Redis, keys: Keys, snapshot: ModelSnapshot) -> Statistics:
    """The statistics of the live model: every partition's, added up (rows in ``snapshot.segments`` order).

    Only partitions whose statistics were computed under ``snapshot``'s version
    count; until every partition has them, the model's own ``{model}:stats``.
    """
    partitions = partition_count(client, keys)
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.hgetall(keys.stats(partition))
    pipe.hgetall(keys.model_stats)
    *shares, own = pipe.execute()
    return combine(shares, own, snapshot)


def combine(shares: Sequence[Mapping[str, str]], model_stats: Mapping[str, str], snapshot: ModelSnapshot) -> Statistics:
    """The live statistics from every partition's hash (``shares``) and the model's own: :func:`live_stats`'s rule."""
    segment_ids = [segment.id for segment in snapshot.segments]
    dimensions = len(snapshot.feature_names)
    version = str(snapshot.version)
    if not shares or any(raw.get(VERSION_FIELD) != version for raw in shares):
        return Statistics.from_mapping(model_stats, segment_ids, dimensions)
    total = Statistics.empty(len(segment_ids), dimensions)
    for raw in shares:
        total = total + Statistics.from_mapping(raw, segment_ids, dimensions)
    return total
