"""Inactivity: recency grows without events, so idle customers are re-scored daily.

Why approximate first: a sweep must cost well under a second for every owned
customer, hundreds of times per replay. Between events a customer's features
change only through time: recency, tenure, the single-purchase interval, and the
zero-spend months appended to its monthly series. This module keeps those inputs
in numpy arrays and moves them all to the new as-of time at once. Customers
whose nearest centroid (or published segment) would change are then re-scored
exactly by the caller with the shared feature function, so what is stored is
always exact.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from shared.features.aggregates import CustomerAggregates
from shared.features.vector import FEATURE_NAMES, SECONDS_PER_DAY

_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _seconds(moment: datetime) -> float:
    return (moment - datetime(1970, 1, 1)).total_seconds()


def _month_number(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


class IdleIndex:
    """Per-customer inputs of the time-dependent features, one row per customer."""

    def __init__(self) -> None:
        self.row: dict[str, int] = {}
        self.ids: list[str] = []
        self.features = np.zeros((0, len(FEATURE_NAMES)))
        self.first = np.zeros(0)
        self.last = np.zeros(0)
        self.frequency = np.zeros(0)
        self.month_start = np.zeros(0)
        self.month_sums = np.zeros((0, 3))

    def _grow(self) -> None:
        size = max(64, 2 * len(self.ids))
        pad = size - len(self.first)
        self.features = np.vstack([self.features, np.zeros((pad, len(FEATURE_NAMES)))])
        self.month_sums = np.vstack([self.month_sums, np.zeros((pad, 3))])
        for name in ("first", "last", "frequency", "month_start"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(pad)]))

    def update(self, customer_id: str, aggregates: CustomerAggregates, features: dict[str, float]) -> None:
        """Record a customer's scored state (after each event or exact re-score)."""
        row = self.row.get(customer_id)
        if row is None:
            if len(self.ids) == len(self.first):
                self._grow()
            row = len(self.ids)
            self.row[customer_id] = row
            self.ids.append(customer_id)
        assert aggregates.first_purchase is not None and aggregates.last_purchase is not None
        self.features[row] = [features[name] for name in FEATURE_NAMES]
        self.first[row] = _seconds(aggregates.first_purchase)
        self.last[row] = _seconds(aggregates.last_purchase)
        self.frequency[row] = len(aggregates.invoices)
        months = sorted(aggregates.month_spend)
        start = int(months[0][:4]) * 12 + int(months[0][5:]) - 1
        values = np.zeros(1 + max(int(m[:4]) * 12 + int(m[5:]) - 1 - start for m in months))
        for key, value in aggregates.month_spend.items():
            values[int(key[:4]) * 12 + int(key[5:]) - 1 - start] += value
        index = np.arange(len(values))
        self.month_start[row] = start
        self.month_sums[row] = [values.sum(), (values * values).sum(), (index * values).sum()]

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
