"""Customer features: one function of (aggregates, as-of event time), column-wise.

``as_of`` is event time, never the wall clock, so a replay of last year computes
what a live system would have computed then. Definitions are in the README's
features table; the order of :data:`FEATURE_NAMES` is the vector order.

Why one column-wise function (:func:`features_matrix`): the bootstrap scores all
customers at once, the worker scores a batch's customers and sweeps every owned
customer daily, and a tool scores one; all run this code, so they agree to the
bit. Each row is computed from its own values only, with sums written out in a
fixed order, so a customer's features never depend on which other customers share
the call (the worker's output must not depend on how its input was batched).

>>> from datetime import datetime
>>> from shared.features.aggregates import CustomerAggregates
>>> one = CustomerAggregates("17850", invoices=2, purchase_lines=3, gross_spend=30.0, products=2,
...     first_purchase=datetime(2011, 5, 1), last_purchase=datetime(2011, 5, 11),
...     first_month=month_number(datetime(2011, 5, 1)), last_month=month_number(datetime(2011, 5, 1)),
...     months={month_number(datetime(2011, 5, 1)): 30.0})
>>> features = compute_features(one, datetime(2011, 6, 1))
>>> features["recency_days"], features["mean_days_between_purchases"], features["monthly_spend_mean"]
(21.0, 10.0, 15.0)
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from shared.features.aggregates import MONTH_WINDOW, AggregateColumns, CustomerAggregates, single_row
from shared.features.clock import MICROS_PER_SECOND, NO_TIME, SECONDS_PER_DAY, month_number, month_numbers, to_micros

FEATURE_NAMES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "distinct_products",
    "lines_per_invoice",
    "mean_days_between_purchases",
    "tenure_days",
    "cancellation_rate",
    "monthly_spend_mean",
    "monthly_spend_std",
    "monthly_spend_trend",
)

# Heavy-tailed features go through sign(x)·log1p(|x|) before robust scaling, so a
# wholesaler with 200 invoices does not own a dimension of the distance.
LOG_FEATURES: tuple[str, ...] = (
    "frequency",
    "monetary",
    "avg_order_value",
    "distinct_products",
    "lines_per_invoice",
    "mean_days_between_purchases",
    "monthly_spend_mean",
    "monthly_spend_std",
    "monthly_spend_trend",
)
COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}
CHUNK_ROWS = 65_536
_WINDOW = np.arange(MONTH_WINDOW)  # month offsets in the window, oldest first

__all__ = ["FEATURE_NAMES", "LOG_FEATURES", "compute_features", "features_matrix", "month_number", "scoreable"]


def _days(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    return (later - earlier) / MICROS_PER_SECOND / SECONDS_PER_DAY


def scoreable(columns: AggregateColumns, rows: np.ndarray) -> np.ndarray:
    """Which rows have features: a customer is scored once it has a purchase invoice."""
    return (columns.invoices[rows] > 0) & (columns.first_purchase[rows] != NO_TIME)


def _monthly(columns: AggregateColumns, rows: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    """:func:`_monthly_series` of ``rows`` (one row each), kept per row for the month of ``as_of``.

    They depend on nothing but the row's aggregates and that month, so a daily sweep
    computes them for a customer once a month, or again after the customer's lines
    (:func:`shared.features.fold.fold` and every load of a row forget them).
    """
    month = month_numbers(as_of)
    stale = columns.monthly_month[rows] != month
    if not stale.any():
        return columns.monthly[rows]
    computed = np.column_stack(_monthly_series(columns, rows[stale], as_of[stale]))
    columns.monthly[rows[stale]] = computed
    columns.monthly_month[rows[stale]] = month[stale]
    out = columns.monthly[rows]
    out[stale] = computed  # a row asked for twice in different months holds the last; each gets its own
    return out


def _monthly_series(columns: AggregateColumns, rows: np.ndarray, as_of: np.ndarray) -> tuple[np.ndarray, ...]:
    """Mean, population std and least-squares slope of the monthly spend series.

    The series runs from the later of the first active month and ``MONTH_WINDOW - 1``
    months before ``as_of``'s month, to ``as_of``'s month, zeros filled.

    The window is one (month, row) matrix, so a call costs a fixed number of numpy
    operations (scoring calls this for a handful of customers at a time); sums run
    over its months in month order (:func:`_sum_months`), the same bits as adding
    month by month.
    """
    last = columns.last_month[rows]
    end = np.maximum(month_numbers(as_of), last)
    start = np.maximum(columns.first_month[rows], end - (MONTH_WINDOW - 1))
    count = (end - start + 1).astype(float)
    month = end - (MONTH_WINDOW - 1) + _WINDOW[:, None]  # (MONTH_WINDOW, n), oldest first
    included = month >= start
    held = (month <= last) & (month > last - MONTH_WINDOW) & included
    values = np.where(held, columns.months[rows[None, :], month % MONTH_WINDOW], 0.0)
    mean = _sum_months(values) / count
    deviation = values - mean
    std = np.sqrt(_sum_months(np.where(included, deviation**2, 0.0)) / count)
    centre = (count - 1.0) / 2.0
    index = (month - start).astype(float) - centre
    covariance = _sum_months(np.where(included, index * deviation, 0.0))
    spread = _sum_months(np.where(included, index**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        trend = np.where(count > 1, covariance / spread, 0.0)
    return mean, std, trend


def _sum_months(values: np.ndarray) -> np.ndarray:
    """Sum over the month axis, ``((0 + m0) + m1) + …``, as the series' definition adds them.

    One addition per month, never numpy's reduction: that sums a single customer's
    months pairwise, so one customer alone would differ in the last bit from the
    same customer among others.
    """
    total = values[0] + 0.0
    for month in values[1:]:
        total += month
    return total


def features_matrix(columns: AggregateColumns, rows: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    """Raw features (columns in :data:`FEATURE_NAMES` order) of ``rows`` as of ``as_of`` (µs, one per row).

    Rows that are not :func:`scoreable` get NaN; callers select scoreable rows first.
    Computed :data:`CHUNK_ROWS` rows at a time: a daily sweep scores every owned
    customer, and the temporaries of a million rows at once would be most of the
    worker's peak memory (each row is computed from its own values, so chunks
    change nothing).
    """
    rows = np.asarray(rows, dtype=np.int64)
    as_of = np.broadcast_to(np.asarray(as_of, dtype=np.int64), rows.shape)
    if len(rows) <= CHUNK_ROWS:
        return _features(columns, rows, as_of)
    out = np.empty((len(rows), len(FEATURE_NAMES)))
    for start in range(0, len(rows), CHUNK_ROWS):
        part = slice(start, start + CHUNK_ROWS)
        out[part] = _features(columns, rows[part], as_of[part])
    return out


def _features(columns: AggregateColumns, rows: np.ndarray, as_of: np.ndarray) -> np.ndarray:
    frequency = columns.invoices[rows].astype(float)
    first, last = columns.first_purchase[rows], columns.last_purchase[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        tenure = np.maximum(0.0, _days(as_of, first))
        span = _days(last, first)
        gross = columns.gross_spend[rows]
        cancels = columns.cancel_invoices[rows].astype(float)
        monthly = _monthly(columns, rows, as_of)
        out = np.column_stack(
            [
                np.maximum(0.0, _days(as_of, last)),
                frequency,
                gross - columns.cancel_amount[rows],
                gross / frequency,
                columns.products[rows].astype(float),
                columns.purchase_lines[rows] / frequency,
                np.where(frequency > 1, span / (frequency - 1.0), tenure),
                tenure,
                cancels / (frequency + cancels),
                monthly,
            ]
        )
    out[~scoreable(columns, rows)] = np.nan
    return out


def compute_features(aggregates: CustomerAggregates, as_of: datetime) -> dict[str, float] | None:
    """One customer's features as of ``as_of``, or None for a customer with no purchase yet."""
    columns = single_row(aggregates)
    row = np.zeros(1, dtype=np.int64)
    if not scoreable(columns, row)[0]:
        return None
    values = features_matrix(columns, row, np.array([to_micros(as_of)]))[0]
    return dict(zip(FEATURE_NAMES, values.tolist(), strict=True))
