"""Assemble the :class:`ModelSnapshot` from a fit, plus the data fingerprint it is keyed by."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from shared.contracts.model_snapshot import ModelSnapshot, ReferenceStats, Segment
from shared.readers.columns import CANONICAL
from worker.bootstrap.cleaning import CleanedHistory
from worker.bootstrap.model_fit import FittedModel
from worker.drift.reference import invoice_statistics, quantile_bins
from worker.segmentation.naming import NamedSegments


def data_fingerprint(cleaned: CleanedHistory) -> str:
    """sha256 over the sorted 128-bit hashes of every row that feeds state (customers and guests).

    Sorted, so the same rows in another file order give the same fingerprint. Each
    row is hashed column-wise (two keyed 64-bit hashes of its typed values), so
    a million-customer history is fingerprinted in seconds.
    """
    rows = pd.concat([cleaned.customers[list(CANONICAL)], cleaned.guests[list(CANONICAL)]], ignore_index=True)
    hashes = np.column_stack(
        [pd.util.hash_pandas_object(rows, index=False, hash_key=key).to_numpy() for key in _HASH_KEYS]
    )
    ordered = hashes[np.lexsort(hashes.T[::-1])]
    return hashlib.sha256(ordered.astype("<u8").tobytes()).hexdigest()


_HASH_KEYS = ("live-segments-01", "live-segments-02")  # 16 bytes each, as pandas' hash needs


def segment_ids(fit: FittedModel, named: NamedSegments) -> np.ndarray:
    """Stable segment id of every customer row."""
    return np.array([named.id_of_label[int(label)] for label in fit.labels], dtype=int)


def build_snapshot(
    *,
    version: int,
    cleaned: CleanedHistory,
    features: pd.DataFrame,
    fit: FittedModel,
    named: NamedSegments,
    cutoff: datetime,
    fingerprint: str,
) -> ModelSnapshot:
    """The versioned model: segments with running sums, scores, window and drift references."""
    ids = segment_ids(fit, named)
    label_of_id = {segment_id: label for label, segment_id in named.id_of_label.items()}
    segments = []
    for segment_id, (name, description) in enumerate(zip(named.names, named.descriptions, strict=True)):
        members = fit.vectors[ids == segment_id]
        segments.append(
            Segment(
                id=segment_id,
                name=name,
                description=description,
                centroid=fit.centroids[label_of_id[segment_id]].tolist(),
                sum=members.sum(axis=0).tolist(),
                count=len(members),
                profile=named.profiles[segment_id],
            )
        )
    distances = np.linalg.norm(fit.vectors - fit.centroids[fit.labels], axis=1)
    reference = ReferenceStats(
        feature_bins={name: quantile_bins(features[name].to_numpy()) for name in features.columns},
        segment_shares={str(segment.id): segment.count / len(features) for segment in segments},
        distance_bins=quantile_bins(distances),
        invoice_stats={name: quantile_bins(values) for name, values in invoice_statistics(cleaned.customers).items()},
        extra={"customers": float(len(features)), "rows": float(cleaned.report.rows_out)},
    )
    first_event = cleaned.customers["invoice_date"].min()
    return ModelSnapshot(
        version=version,
        created_at=datetime.now(UTC),
        feature_names=list(features.columns),
        transform=fit.transform,
        segments=segments,
        k=fit.k,
        training_window=(None if pd.isna(first_event) else first_event.to_pydatetime(), cutoff),
        data_fingerprint=fingerprint,
        quality=fit.quality,
        k_selection={str(k): scores for k, scores in fit.k_selection.items()},
        next_segment_id=fit.k,
        reference=reference,
        customers=len(features),
    )
