"""Every scored customer a worker owns, as numpy rows: the sweep's working set.

Why arrays: recency grows without events, so once a day every idle customer is
moved to the new as-of time and re-assigned, hundreds of times per replay; that
must cost milliseconds, not a Python loop over customers. Between events a
customer's features change only through time (recency, tenure, the
single-purchase interval, the zero-spend months appended to its monthly
series); the rows keep those inputs and move them all at once
(:meth:`ScoredIndex.features_at`). Each row also holds the vector the customer
is counted at in the model statistics, its assigned and published centroid
rows, and its partition, so statistics are rebuilt with one matrix product.
Customers whose assignment changes are re-scored exactly by the caller with the
shared feature function, so what is stored is always exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np

from shared.features.aggregates import CustomerAggregates
from shared.features.vector import FEATURE_NAMES, SECONDS_PER_DAY, month_index

_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
_FLOAT_ARRAYS = ("first", "last", "frequency", "month_start")
_INT_ARRAYS = ("segment", "published", "partition")
_MATRICES = ("features", "vectors", "month_sums")


def _seconds(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1)).total_seconds()


def _month_number(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


class ScoredIndex:
    """One row per scored customer; ``row`` maps a customer id to its row."""

    def __init__(self, dimensions: int = len(FEATURE_NAMES)) -> None:
        self.row: dict[str, int] = {}
        self.ids: list[str] = []
        self.features = np.zeros((0, len(FEATURE_NAMES)))
        self.vectors = np.zeros((0, dimensions))
        self.month_sums = np.zeros((0, 3))
        for name in _FLOAT_ARRAYS:
            setattr(self, name, np.zeros(0))
        for name in _INT_ARRAYS:
            setattr(self, name, np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def _grow(self) -> None:
        pad = max(64, len(self.ids))
        for name in _MATRICES:
            current = getattr(self, name)
            setattr(self, name, np.vstack([current, np.zeros((pad, current.shape[1]))]))
        for name in (*_FLOAT_ARRAYS, *_INT_ARRAYS):
            current = getattr(self, name)
            setattr(self, name, np.concatenate([current, np.zeros(pad, dtype=current.dtype)]))

    def update(
        self,
        customer_id: str,
        aggregates: CustomerAggregates,
        features: dict[str, float],
        vector: np.ndarray,
        segment_row: int,
        published_row: int,
        partition: int,
    ) -> None:
        """Record a customer's exactly scored state (after an event or an exact re-score)."""
        row = self.row.get(customer_id)
        if row is None:
            if len(self.ids) == len(self.first):
                self._grow()
            row = len(self.ids)
            self.row[customer_id] = row
            self.ids.append(customer_id)
        assert aggregates.first_purchase is not None and aggregates.last_purchase is not None
        self.features[row] = [features[name] for name in FEATURE_NAMES]
        self.vectors[row] = vector
        self.segment[row], self.published[row], self.partition[row] = segment_row, published_row, partition
        self.first[row] = _seconds(aggregates.first_purchase)
        self.last[row] = _seconds(aggregates.last_purchase)
        self.frequency[row] = len(aggregates.invoices)
        # Plain Python over a dozen months: numpy's per-call overhead was most of this method.
        months = [(month_index(key), value) for key, value in aggregates.month_spend.items()]
        start = min(index for index, _ in months)
        total = squares = weighted = 0.0
        for index, value in months:
            total += value
            squares += value * value
            weighted += (index - start) * value
        self.month_start[row] = start
        self.month_sums[row] = (total, squares, weighted)

    def features_at(self, as_of: datetime) -> np.ndarray:
        """Approximate raw feature matrix of every indexed customer as of ``as_of``."""
        n = len(self.ids)
        out = self.features[:n].copy()
        now = _seconds(as_of)
        tenure = np.maximum(0.0, (now - self.first[:n]) / SECONDS_PER_DAY)
        out[:, _COLUMN["recency_days"]] = np.maximum(0.0, (now - self.last[:n]) / SECONDS_PER_DAY)
        out[:, _COLUMN["tenure_days"]] = tenure
        single = self.frequency[:n] == 1
        out[single, _COLUMN["mean_days_between_purchases"]] = tenure[single]
        months = np.maximum(_month_number(as_of) - self.month_start[:n] + 1, 1)
        total, squares, weighted = self.month_sums[:n].T
        mean = total / months
        out[:, _COLUMN["monthly_spend_mean"]] = mean
        out[:, _COLUMN["monthly_spend_std"]] = np.sqrt(np.maximum(squares / months - mean * mean, 0.0))
        centre = (months - 1) / 2.0
        spread = months * (months * months - 1) / 12.0
        with np.errstate(divide="ignore", invalid="ignore"):
            trend = np.where(months > 1, (weighted - centre * total) / spread, 0.0)
        out[:, _COLUMN["monthly_spend_trend"]] = trend
        return out

    def statistics(self, partitions: Iterable[int], k: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Vector sums and member counts per centroid row, for each of ``partitions``.

        One weighted ``bincount`` per dimension over the cell (partition slot,
        centroid row) of each member: a sweep rebuilds the statistics after every
        Lloyd pass.
        """
        wanted = sorted(set(partitions))
        n = len(self.ids)
        slot = np.full(n, -1, dtype=np.int64)
        for i, partition in enumerate(wanted):
            slot[self.partition[:n] == partition] = i
        segment = self.segment[:n]
        member = (slot >= 0) & (segment >= 0)
        cell = (slot * k + segment)[member]
        vectors = self.vectors[:n][member]
        size = len(wanted) * k
        counts = np.bincount(cell, minlength=size).astype(float).reshape(len(wanted), k)
        sums = np.stack([np.bincount(cell, weights=column, minlength=size) for column in vectors.T], axis=1)
        sums = sums.reshape(len(wanted), k, vectors.shape[1])
        return {partition: (sums[i], counts[i]) for i, partition in enumerate(wanted)}

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the rows of revoked partitions (compacting the arrays)."""
        n = len(self.ids)
        keep = ~np.isin(self.partition[:n], list(partitions))
        for name in (*_MATRICES, *_FLOAT_ARRAYS, *_INT_ARRAYS):
            setattr(self, name, getattr(self, name)[:n][keep].copy())
        self.ids = [cid for cid, kept in zip(self.ids, keep, strict=True) if kept]
        self.row = {cid: row for row, cid in enumerate(self.ids)}
