"""Customer features: one pure function of (aggregates, as-of event time).

``as_of`` is the event-time watermark, never the wall clock, so a replay of last
year computes what a live system would have computed then. Definitions are in the
README's features table; the order of :data:`FEATURE_NAMES` is the vector order.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime

from shared.features.aggregates import CustomerAggregates

SECONDS_PER_DAY = 86_400.0

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


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / SECONDS_PER_DAY


@functools.cache
def month_index(key: str) -> int:
    """Months since year 0 of a ``YYYY-MM`` key (cached: a handful of keys, parsed millions of times)."""
    year, month = key.split("-")
    return int(year) * 12 + int(month) - 1


def monthly_series(month_spend: dict[str, float], as_of: datetime) -> list[float]:
    """Net product spend per calendar month, from the first active month to ``as_of``'s, zeros filled."""
    if not month_spend:
        return []
    start = min(month_index(key) for key in month_spend)
    end = max(as_of.year * 12 + as_of.month - 1, max(month_index(key) for key in month_spend))
    series = [0.0] * (end - start + 1)
    for key, value in month_spend.items():
        series[month_index(key) - start] += value
    return series


def _trend(series: list[float]) -> float:
    """Least-squares slope in pounds per month; 0 for a single month."""
    n = len(series)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2.0
    mean_y = sum(series) / n
    covariance = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(series))
    variance = sum((i - mean_x) ** 2 for i in range(n))
    return covariance / variance


def compute_features(aggregates: CustomerAggregates, as_of: datetime) -> dict[str, float] | None:
    """The feature vector as of ``as_of``, or None for a customer with no purchase yet."""
    if not aggregates.invoices or aggregates.first_purchase is None or aggregates.last_purchase is None:
        return None
    frequency = len(aggregates.invoices)
    tenure = max(0.0, _days(as_of, aggregates.first_purchase))
    span = _days(aggregates.last_purchase, aggregates.first_purchase)
    series = monthly_series(aggregates.month_spend, as_of)
    mean = sum(series) / len(series)
    variance = sum((v - mean) ** 2 for v in series) / len(series)
    all_invoices = frequency + len(aggregates.cancel_invoices)
    return {
        "recency_days": max(0.0, _days(as_of, aggregates.last_purchase)),
        "frequency": float(frequency),
        "monetary": aggregates.net_spend,
        "avg_order_value": aggregates.gross_spend / frequency,
        "distinct_products": float(len(aggregates.products)),
        "lines_per_invoice": aggregates.purchase_lines / frequency,
        "mean_days_between_purchases": span / (frequency - 1) if frequency > 1 else tenure,
        "tenure_days": tenure,
        "cancellation_rate": len(aggregates.cancel_invoices) / all_invoices,
        "monthly_spend_mean": mean,
        "monthly_spend_std": math.sqrt(variance),
        "monthly_spend_trend": _trend(series),
    }
