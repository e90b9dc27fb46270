"""Refit the live model on every customer's current features and install it as version v+1.

When: on a drift incident (policy ``refresh``) or by hand (``python -m worker
refresh``). The scaler stays the same (vectors of both versions are in the same
units, so old and new centroids can be matched); k stays the same; the
segment-structure references (shares, distance bins, feature bins) move to the
new model. The invoice-behaviour reference stays the bootstrap period's: it
describes purchases, not the model. Workers notice the new ``model:current`` at
their next batch (or idle check), re-score their customers and publish one
``model_refresh`` change per customer whose segment changed.

Names: a matched segment keeps its id and its label, so consumers keep reading the
same name; its description is written anew from the refit (today's numbers). A new
segment is labelled by what sets it apart, never with a label a kept segment holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import redis
from sklearn.cluster import KMeans

from shared.contracts.model_snapshot import ModelSnapshot, ReferenceStats, Segment
from shared.exceptions import ModelError
from shared.features.aggregates import PACKED_FIELDS, AggregateColumns
from shared.features.clock import to_micros
from shared.features.scaling import transform_matrix
from shared.features.vector import FEATURE_NAMES, features_matrix, scoreable
from shared.state.customers import iter_fields
from shared.state.keys import Keys
from shared.state.model_stats import Statistics, live_stats
from shared.state.model_store import activate, require_current, write_version
from worker.drift.reference import quantile_bins
from worker.refresh.matching import match_centroids
from worker.refresh.settings import RefreshSettings
from worker.segmentation.assignment import nearest_centroid
from worker.segmentation.naming import name_segments


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh changed: ids kept (old id → same id), ids created, ids retired."""

    previous: ModelSnapshot
    snapshot: ModelSnapshot
    kept: list[int]
    created: list[int]
    retired: list[int]


def current_features(client: redis.Redis, keys: Keys, as_of: datetime) -> pd.DataFrame:
    """Every stored customer's exact features as of ``as_of`` (one row per customer with a purchase)."""
    ids, packed, countries = [], [], []
    for cid, _, values in iter_fields(client, keys, (*PACKED_FIELDS, "country")):
        if values[0]:
            ids.append(cid)
            packed += [value or "" for value in values[:-1]]
            countries.append(values[-1] or "")
    columns = AggregateColumns(len(ids))
    rows = columns.append(len(ids))
    columns.load_packed(rows, "".join(packed).encode(), countries)
    rows = rows[scoreable(columns, rows)]
    matrix = features_matrix(columns, rows, np.full(len(rows), to_micros(as_of)))
    return pd.DataFrame(matrix, index=[ids[row] for row in rows], columns=list(FEATURE_NAMES))


def refit(client: redis.Redis, keys: Keys, as_of: datetime, options: RefreshSettings) -> RefreshResult:
    """Fit, match ids, write ``model:v{n+1}`` and switch ``model:current`` to it atomically."""
    previous = require_current(client, keys)
    features = current_features(client, keys, as_of)
    if len(features) <= previous.k:
        raise ModelError(f"only {len(features)} customers with purchases: too few to refit k={previous.k}")
    vectors = transform_matrix(features.to_numpy(), previous.transform, list(FEATURE_NAMES))
    fit = KMeans(n_clusters=previous.k, init="k-means++", n_init=options.n_init, random_state=options.seed)
    centroids = fit.fit(vectors).cluster_centers_
    labels = nearest_centroid(vectors, centroids)
    old_ids = [segment.id for segment in previous.segments]
    initial = np.array([segment.centroid for segment in previous.segments])
    live = live_stats(client, keys, previous).centroids(initial)
    matched = match_centroids(centroids, live, options.match_threshold)
    kept_names = {label: previous.segments[row].name for label, row in matched.items() if row is not None}
    named = name_segments(features, labels, fixed=kept_names)
    next_id = previous.next_segment_id
    segments, created = [], []
    id_of_label: dict[int, int] = {}
    for label in range(previous.k):
        row = matched[label]
        if row is not None:
            segment_id = previous.segments[row].id
        else:
            segment_id, next_id = next_id, next_id + 1
            created.append(segment_id)
        id_of_label[label] = segment_id
        members = vectors[labels == label]
        segments.append(
            Segment(
                id=segment_id,
                name=named.names[named.id_of_label[label]],
                description=named.descriptions[named.id_of_label[label]],
                centroid=centroids[label].tolist(),
                sum=members.sum(axis=0).tolist(),
                count=len(members),
                profile=named.profiles[named.id_of_label[label]],
            )
        )
    segments.sort(key=lambda segment: segment.id)
    kept = sorted(previous.segments[row].id for row in matched.values() if row is not None)
    retired = sorted(set(old_ids) - set(kept))
    distances = np.linalg.norm(vectors - centroids[labels], axis=1)
    snapshot = ModelSnapshot(
        version=previous.version + 1,
        created_at=datetime.now(UTC),
        feature_names=list(FEATURE_NAMES),
        transform=previous.transform,
        segments=segments,
        k=previous.k,
        training_window=(previous.training_window[0], as_of),
        data_fingerprint=previous.data_fingerprint,
        quality={"inertia": float(fit.inertia_)},
        next_segment_id=next_id,
        retired_segment_ids=sorted(set(previous.retired_segment_ids) | set(retired)),
        reference=ReferenceStats(
            feature_bins={name: quantile_bins(features[name].to_numpy()) for name in features.columns},
            segment_shares={str(segment.id): segment.count / len(features) for segment in segments},
            distance_bins=quantile_bins(distances),
            invoice_stats=previous.reference.invoice_stats,
            extra={"customers": float(len(features)), "refreshed_from": float(previous.version)},
        ),
        customers=len(features),
    )
    write_version(client, keys, snapshot)
    position = {segment.id: row for row, segment in enumerate(segments)}
    rows = np.array([position[id_of_label[int(label)]] for label in labels], dtype=np.int64)
    activate(client, keys, snapshot, Statistics.of(vectors, rows, len(segments)))
    return RefreshResult(previous=previous, snapshot=snapshot, kept=kept, created=created, retired=retired)
