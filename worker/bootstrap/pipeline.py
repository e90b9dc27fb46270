"""The bootstrap run, stage by stage: load, clean, aggregate, fit, store, seed, switch.

Idempotence: a run is identified by its data fingerprint and its parameters. When
the live model came from the same identity, a run without ``--force`` changes
nothing, and one with ``--force`` re-seeds the customer state from the live model
(undoing stream updates) without creating a new version. A different identity
needs ``--force`` and installs version n+1.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import redis

from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import EmptyInputError
from shared.features.clock import to_micros
from shared.features.scaling import transform_matrix
from shared.features.vector import FEATURE_NAMES
from shared.state.customer_record import NO_SEGMENT
from shared.state.keys import Keys
from shared.state.model_stats import Statistics
from shared.state.model_store import activate, load_current, refuse_live, write_file, write_version
from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame, guest_stats, scored_rows
from worker.bootstrap.cleaning import CleaningReport, clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.model_fit import fit_model
from worker.bootstrap.reference_scorings import reference_scorings
from worker.bootstrap.seed_records import build_seed
from worker.bootstrap.seeding import (
    SeedReport,
    reset_stream_state,
    seed_customers,
    seed_guests,
    seed_segment_products,
)
from worker.bootstrap.settings import BootstrapSettings
from worker.bootstrap.snapshot import build_snapshot, data_fingerprint, segment_ids
from worker.drift import DriftSettings
from worker.drift.reference import reference_json, scorings_json
from worker.segmentation.assignment import nearest_centroid
from worker.segmentation.naming import name_segments

log = logging.getLogger("worker.bootstrap")

Outcome = Literal["installed", "reset", "unchanged"]


@dataclass
class BootstrapResult:
    """What a run did, for the summary."""

    outcome: Outcome
    snapshot: ModelSnapshot
    cleaning: CleaningReport
    features: pd.DataFrame
    segments: np.ndarray
    seed: SeedReport | None = None
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def _stage(name: str, timings: dict[str, float]) -> Iterator[None]:
    log.info("%s ...", name)
    started = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - started
    log.info("%s done in %.2f s", name, timings[name])


def snapshot_statistics(vectors: np.ndarray, segments: np.ndarray, snapshot: ModelSnapshot) -> Statistics:
    """The model's own statistics (``{model}:stats``): its customers' vectors by segment, in fixed point."""
    ids = [segment.id for segment in snapshot.segments]
    rows = np.searchsorted(np.array(ids), segments) if len(ids) else segments
    return Statistics.of(vectors, rows, len(ids))


def run_identity(fingerprint: str, until: datetime, settings: BootstrapSettings) -> str:
    """Hash of everything that determines the model: data, cutoff and fit parameters."""
    parameters = {
        "data": fingerprint,
        "until": until.isoformat(),
        "k_values": settings.k_values,
        "seed": settings.seed,
        "n_init": settings.n_init,
        "silhouette_sample": settings.silhouette_sample,
    }
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


def _live_identity(client: redis.Redis, keys: Keys, live: ModelSnapshot | None) -> str | None:
    meta = client.get(keys.bootstrap_meta)
    if live is None or meta is None:
        return None
    parsed = json.loads(meta)
    return parsed.get("identity") if parsed.get("model_version") == live.version else None


def _next_version(client: redis.Redis, keys: Keys, live: ModelSnapshot | None) -> int:
    version = (live.version if live else 0) + 1
    while client.exists(keys.model(version)):
        version += 1
    return version


def _live_segments(snapshot: ModelSnapshot, vectors: np.ndarray) -> np.ndarray:
    centroids = np.array([segment.centroid for segment in snapshot.segments])
    ids = np.array([segment.id for segment in snapshot.segments])
    return ids[nearest_centroid(vectors, centroids)]


def _drift_scorings(customers: pd.DataFrame, until: datetime) -> str:
    """The scorings of the reference window's last ``segment_reference_days`` days, the segment family's reference."""
    days = DriftSettings().segment_reference_days
    since = datetime.combine(until.date(), datetime.min.time()) - timedelta(days=days)
    return scorings_json(reference_scorings(customers, since), list(FEATURE_NAMES))


def run_bootstrap(
    input_path: Path,
    until: datetime,
    client: redis.Redis,
    keys: Keys,
    settings: BootstrapSettings,
    *,
    partitions: int,
    force: bool = False,
) -> BootstrapResult:
    """Bootstrap Redis (and the model file) from the history before ``until``, laid out for ``partitions``.

    ``partitions`` is the invoices topic's partition count (``SEG_TOPICS__PARTITIONS``):
    each customer's state lives under its partition's hash tag.
    """
    timings: dict[str, float] = {}
    with _stage("load", timings):
        history = load_history(input_path, until)
    if history.empty:
        raise EmptyInputError(f"{input_path}: no rows before {until.isoformat()}")
    with _stage("clean", timings):
        cleaned = clean(history)
        del history  # the cleaned frames are all that is used from here: the raw one is a third of the peak
    if cleaned.customers.empty:
        raise EmptyInputError(f"{input_path}: only guest rows before {until.isoformat()}; no customer to cluster")
    with _stage("aggregate", timings):
        aggregates = batch_aggregates(cleaned.customers)
        features = feature_frame(aggregates, until)
        guests = guest_stats(cleaned.guests)
        fingerprint = data_fingerprint(cleaned)
    if features.empty:
        raise EmptyInputError(f"{input_path}: no customer purchased before {until.isoformat()}")
    identity = run_identity(fingerprint, until, settings)
    live = load_current(client, keys)
    same = _live_identity(client, keys, live) == identity
    if same and live is not None:
        snapshot = live
        vectors = transform_matrix(features.to_numpy(), live.transform, live.feature_names)
        segments = _live_segments(live, vectors)
        if not force:
            log.info("model v%d is live with the same data and parameters: nothing to do", live.version)
            write_file(snapshot, settings.model_file)
            return BootstrapResult("unchanged", snapshot, cleaned.report, features, segments, timings=timings)
    else:
        refuse_live(live, force)
        with _stage("fit", timings):
            fit = fit_model(features, settings)
            named = name_segments(features, fit.labels)
            snapshot = build_snapshot(
                version=_next_version(client, keys, live),
                cleaned=cleaned,
                features=features,
                fit=fit,
                named=named,
                cutoff=until,
                fingerprint=fingerprint,
            )
            vectors, segments = fit.vectors, segment_ids(fit, named)
    with _stage("store", timings):
        write_version(client, keys, snapshot)
        reset_stream_state(client, keys, partitions)
        records = build_seed(
            cleaned.customers, aggregates, partitions, features.to_numpy(), vectors, segments, to_micros(until)
        )
        seed = seed_customers(client, keys, records, partitions, settings.batch_size)
        seed_guests(client, keys, cleaned.guests, partitions)
        published = np.full(len(aggregates), NO_SEGMENT)
        published[scored_rows(aggregates)] = segments
        seed_segment_products(
            client, keys, cleaned.customers, aggregates.line_rows, published, records.partition, partitions
        )
        meta = {
            "identity": identity,
            "model_version": snapshot.version,
            "cutoff": until.isoformat(),
            "input": Path(input_path).name,
            "data_fingerprint": fingerprint,
            "settings": settings.model_dump(mode="json", exclude={"model_file", "batch_size"}),
            "cleaning": asdict(cleaned.report),
            "partitions": partitions,
            "customers": seed.customers_written,
            "scored": seed.scored,
            "guest_lines": guests.lines,
        }
        also = {
            keys.cutoff: until.isoformat(),
            keys.bootstrap_meta: json.dumps(meta),
            keys.drift_reference: reference_json(cleaned.customers),
            keys.drift_scorings: _drift_scorings(cleaned.customers, until),
        }
        counted = snapshot_statistics(vectors, segments, snapshot)
        activate(client, keys, snapshot, counted, also)
        write_file(snapshot, settings.model_file)
    outcome: Outcome = "reset" if same else "installed"
    return BootstrapResult(outcome, snapshot, cleaned.report, features, segments, seed, timings)
