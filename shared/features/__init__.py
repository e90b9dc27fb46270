"""Customer aggregates and features: the one definition both batch and stream use."""

from shared.features.aggregates import CustomerAggregates, GuestStats, LineKind, apply_line, classify
from shared.features.catalog import NON_PRODUCT_CODES, is_product
from shared.features.vector import FEATURE_NAMES, LOG_FEATURES, compute_features

__all__ = [
    "FEATURE_NAMES",
    "LOG_FEATURES",
    "NON_PRODUCT_CODES",
    "CustomerAggregates",
    "GuestStats",
    "LineKind",
    "apply_line",
    "classify",
    "compute_features",
    "is_product",
]
