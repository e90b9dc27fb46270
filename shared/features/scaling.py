"""The model's feature transform: signed log1p on heavy-tailed features, then robust scaling.

Why shared: the bootstrapper fits the parameters and the worker applies them to every
update; both must run this one code so a customer lands on the same vector either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from shared.contracts.model_snapshot import Transform
from shared.features.vector import FEATURE_NAMES, LOG_FEATURES


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """sign(x)·log1p(|x|): compresses tails both ways and keeps 0 at 0 (spend can be negative)."""
    return np.sign(values) * np.log1p(np.abs(values))


def _log_mask(transform_log_features: Sequence[str], feature_names: Sequence[str]) -> np.ndarray:
    return np.array([name in transform_log_features for name in feature_names])


def fit_transform(matrix: np.ndarray, feature_names: Sequence[str] = FEATURE_NAMES) -> Transform:
    """Parameters from raw features (rows = customers): median and IQR after the log step.

    A feature whose IQR is 0 (e.g. cancellation rate when most customers never
    cancel) gets scale 1, so it is centred but not blown up.
    """
    log_features = [name for name in feature_names if name in LOG_FEATURES]
    logged = np.where(_log_mask(log_features, feature_names), signed_log1p(matrix), matrix)
    q25, median, q75 = np.quantile(logged, [0.25, 0.5, 0.75], axis=0)
    iqr = q75 - q25
    scale = np.where(iqr > 0, iqr, 1.0)
    return Transform(log_features=log_features, center=median.tolist(), scale=scale.tolist())


def transform_matrix(
    matrix: np.ndarray, transform: Transform, feature_names: Sequence[str] = FEATURE_NAMES
) -> np.ndarray:
    """Raw feature rows (columns in ``feature_names`` order) -> scaled model space."""
    matrix = np.asarray(matrix, dtype=float)
    logged = np.where(_log_mask(transform.log_features, feature_names), signed_log1p(matrix), matrix)
    return (logged - np.asarray(transform.center)) / np.asarray(transform.scale)


def transform_vector(
    features: Mapping[str, float], transform: Transform, feature_names: Sequence[str] = FEATURE_NAMES
) -> np.ndarray:
    """One customer's feature dict (from ``compute_features``) -> its scaled vector."""
    row = np.array([[features[name] for name in feature_names]], dtype=float)
    return transform_matrix(row, transform, feature_names)[0]
