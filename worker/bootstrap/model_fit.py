"""Fit the initial k-means: transform, choose k by silhouette, fit, score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from shared.contracts.model_snapshot import Transform
from shared.exceptions import ModelError
from shared.features.scaling import fit_transform, transform_matrix
from worker.bootstrap.settings import BootstrapSettings
from worker.segmentation.assignment import nearest_centroid


@dataclass(frozen=True)
class FittedModel:
    """The chosen clustering, in fit order (ids are assigned later by :mod:`naming`)."""

    transform: Transform
    vectors: np.ndarray
    centroids: np.ndarray
    labels: np.ndarray
    k: int
    quality: dict[str, float]
    k_selection: dict[int, dict[str, float]]


def _fit_k(vectors: np.ndarray, k: int, settings: BootstrapSettings) -> tuple[KMeans, dict[str, float]]:
    model = KMeans(n_clusters=k, init="k-means++", n_init=settings.n_init, random_state=settings.seed).fit(vectors)
    labels = nearest_centroid(vectors, model.cluster_centers_)
    sample = settings.silhouette_sample if len(vectors) > settings.silhouette_sample else None
    scores = {
        "silhouette": float(silhouette_score(vectors, labels, sample_size=sample, random_state=settings.seed)),
        "calinski_harabasz": float(calinski_harabasz_score(vectors, labels)),
        "davies_bouldin": float(davies_bouldin_score(vectors, labels)),
        "inertia": float(model.inertia_),
    }
    return model, scores


def fit_model(features: pd.DataFrame, settings: BootstrapSettings) -> FittedModel:
    """Fit on raw features (rows = customers, columns = FEATURE_NAMES); k fixed or best silhouette.

    Labels are re-derived as nearest centroids so that the per-segment sums stored
    in the snapshot are exactly those a worker reproduces with the same rule.
    """
    customers = len(features)
    candidates = [k for k in settings.k_values if k < customers]
    if not candidates:
        raise ModelError(
            f"only {customers} customers with purchases in the window; k={settings.k_values[0]} needs at least "
            f"{settings.k_values[0] + 1} (choose an earlier --k or a later --until)"
        )
    transform = fit_transform(features.to_numpy(), list(features.columns))
    vectors = transform_matrix(features.to_numpy(), transform, list(features.columns))
    fits = {k: _fit_k(vectors, k, settings) for k in candidates}
    best = max(candidates, key=lambda k: fits[k][1]["silhouette"])
    model, quality = fits[best]
    return FittedModel(
        transform=transform,
        vectors=vectors,
        centroids=model.cluster_centers_,
        labels=nearest_centroid(vectors, model.cluster_centers_),
        k=best,
        quality=quality,
        k_selection={k: scores for k, (_, scores) in fits.items()},
    )


def format_k_selection(k_selection: dict[int, dict[str, float]], chosen: int) -> str:
    """The scores per k as a table; silhouette and CH are better high, DB better low."""
    lines = [f"{'k':>3}  {'silhouette':>10}  {'calinski_h':>10}  {'davies_b':>8}  {'inertia':>10}"]
    for k, scores in sorted(k_selection.items()):
        lines.append(
            f"{k:>3}  {scores['silhouette']:>10.4f}  {scores['calinski_harabasz']:>10.1f}  "
            f"{scores['davies_bouldin']:>8.4f}  {scores['inertia']:>10.1f}" + ("  <- chosen" if k == chosen else "")
        )
    return "\n".join(lines)
