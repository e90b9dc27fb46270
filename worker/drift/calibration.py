"""Reference of the per-invoice monitor: bins, quantile grid, scale and thresholds per statistic.

Thresholds come from the reference itself: the statistic is computed on
consecutive reference chunks of ``invoice_window`` invoices (nothing drifted
there by definition) and the alert level is mean + ``threshold_sigmas``·σ.
Given raw reference invoices in event order (bootstrap, harness), chunks are real
stretches of time and carry the data's own clumpiness. Given only the snapshot's
decile bins, chunks are drawn i.i.d. from those bins, and the threshold source says so.
The customer-activity monitor's null is a day-block bootstrap of the reference
invoices (:func:`activity_from_invoices`); it has no snapshot-only fallback.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

import numpy as np
import pandas as pd
from pydantic import BaseModel

from shared.contracts.model_snapshot import ModelSnapshot, QuantileBins
from worker.drift.activity_detector import ActivityReference, shortfall
from worker.drift.invoice_table import STATISTICS
from worker.drift.reference import bin_shares, quantile_bins
from worker.drift.settings import DriftSettings
from worker.drift.statistics import Threshold, calibrated, normalised_wasserstein, psi

GRID_POINTS = 101
# Lines per invoice run from 1 to several hundred: on the raw scale a few wholesale invoices of
# 200+ lines move the Wasserstein distance more than any change of the typical invoice, and its
# null has tails that mean + kσ does not cover (17 of 38 false incidents on the no-drift controls
# of harness/drift.py, seeds 100-119). On log1p(lines) every invoice weighs alike.
LOG_WASSERSTEIN = frozenset({"lines_per_invoice"})


class StatisticReference(BaseModel):
    """One invoice statistic's reference distribution and its two calibrated thresholds."""

    edges: list[float]
    shares: list[float]
    grid: list[float]
    scale: float
    mean: float
    psi: Threshold
    wasserstein: Threshold
    log_wasserstein: bool = False  # the grid and the distance are on log1p(values)
    wasserstein_scale: float | None = None  # spread of the grid's values; None: ``scale``

    def psi_of(self, values: np.ndarray) -> float:
        """PSI of a window, its bin counts smoothed by half an invoice each (Jeffreys prior).

        A window of a hundred invoices cannot tell a 1% bin from an empty one; without
        smoothing an empty bin weighs ln(10%/0.01%) and one quiet day makes a PSI spike
        far beyond mean + kσ of the calibration chunks.
        """
        counts = np.asarray(bin_shares(values, self.edges)) * len(values)
        return psi((counts + 0.5) / (len(values) + 0.5 * len(counts)), self.shares)

    def wasserstein_of(self, values: np.ndarray) -> float:
        """Normalised Wasserstein distance of a window to the grid, on the grid's scale (log1p or raw)."""
        values = np.log1p(values) if self.log_wasserstein else values
        return normalised_wasserstein(values, np.asarray(self.grid), self.wasserstein_scale or self.scale)


def _spread(values: np.ndarray) -> float:
    """Interquartile range in σ units of a normal (robust to the few huge invoices); std if the IQR is 0."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return float((q3 - q1) / 1.349) or float(values.std()) or 1.0


def _statistic_reference(
    name: str, chunks: list[np.ndarray], bins: QuantileBins, sigmas: float, source: str
) -> StatisticReference:
    values = np.concatenate(chunks)
    logged = name in LOG_WASSERSTEIN
    grid_values = np.log1p(values) if logged else values
    draft = StatisticReference(
        edges=bins.edges,
        shares=bins.shares,
        grid=np.quantile(grid_values, np.linspace(0.0, 1.0, GRID_POINTS)).tolist(),
        scale=_spread(values),
        mean=float(values.mean()),
        psi=Threshold(value=1.0, source=""),
        wasserstein=Threshold(value=1.0, source=""),
        log_wasserstein=logged,
        wasserstein_scale=_spread(grid_values) if logged else None,
    )
    draft.psi = calibrated([draft.psi_of(chunk) for chunk in chunks], sigmas, source)
    draft.wasserstein = calibrated([draft.wasserstein_of(chunk) for chunk in chunks], sigmas, source)
    return draft


def _chunks(column: np.ndarray, size: int, min_events: int) -> list[np.ndarray]:
    """Consecutive chunks of ``size`` invoices, missing values dropped, thin chunks skipped."""
    pieces = [column[start : start + size] for start in range(0, len(column) - size + 1, size)]
    pieces = [piece[~np.isnan(piece)] for piece in pieces]
    return [piece for piece in pieces if len(piece) >= min_events]


def from_invoices(reference: pd.DataFrame, settings: DriftSettings) -> dict[str, StatisticReference]:
    """Calibrate on real reference invoices (an :func:`~worker.drift.invoice_table.invoice_table`)."""
    result = {}
    for name in STATISTICS:
        column = reference[name].to_numpy(dtype=float)
        chunks = _chunks(column, settings.invoice_window, settings.min_events)
        source = f"reference chunks of {settings.invoice_window:,} invoices"
        bins = quantile_bins(column[~np.isnan(column)], settings.psi_bins)
        result[name] = _statistic_reference(name, chunks, bins, settings.threshold_sigmas, source)
    return result


def sample_bins(bins: QuantileBins, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from the piecewise-uniform distribution the bins describe."""
    edges = np.asarray(bins.edges)
    index = rng.choice(len(bins.shares), size=size, p=np.asarray(bins.shares) / np.sum(bins.shares))
    return edges[index] + rng.random(size) * (edges[index + 1] - edges[index])


def from_snapshot(snapshot: ModelSnapshot, settings: DriftSettings) -> dict[str, StatisticReference]:
    """Calibrate on i.i.d. chunks drawn from the snapshot's bins (when no raw reference is at hand)."""
    rng = np.random.default_rng(settings.seed)
    result = {}
    for name in STATISTICS:
        bins = snapshot.reference.invoice_stats[name]
        size = settings.invoice_window
        chunks = [sample_bins(bins, size, rng) for _ in range(settings.simulated_chunks)]
        source = f"i.i.d. chunks of {size:,} invoices drawn from the snapshot v{snapshot.version} bins"
        result[name] = _statistic_reference(name, chunks, bins, settings.threshold_sigmas, source)
    return result


def _null_series(counts: np.ndarray, settings: DriftSettings) -> np.ndarray:
    """The statistic at every day of a customers × days count matrix that has a full history."""
    history, window = settings.activity_history_days, settings.activity_window_days
    cumulative = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(counts, axis=1)], axis=1)
    values = []
    for end in range(history + window, counts.shape[1] + 1):
        past = cumulative[:, end - window] - cumulative[:, end - window - history]
        loyal = past >= settings.activity_min_invoices
        if loyal.sum() < settings.activity_min_customers:
            continue
        recent = cumulative[:, end] - cumulative[:, end - window]
        values.append(shortfall(recent[loyal].sum(), past[loyal].sum() * window / history))
    return np.asarray(values)


def activity_from_invoices(reference: pd.DataFrame, settings: DriftSettings) -> ActivityReference:
    """Null mean and σ from day-block bootstraps of the reference invoices (event_time, customer_id).

    Each replay is ``activity_null_days`` trading days (days with invoices) drawn with
    replacement; days without invoices carry no information about customers' pace.
    """
    days = reference["event_time"].dt.normalize()
    codes, _ = pd.factorize(reference["customer_id"])
    day_codes, _ = pd.factorize(days, sort=True)
    per_day = np.zeros((codes.max() + 1, day_codes.max() + 1))
    np.add.at(per_day, (codes, day_codes), 1.0)
    rng = np.random.default_rng(settings.seed)
    length = settings.activity_history_days + settings.activity_window_days + settings.activity_null_days
    replays = settings.activity_null_replays
    values = np.concatenate(
        [_null_series(per_day[:, rng.integers(0, per_day.shape[1], size=length)], settings) for _ in range(replays)]
    )
    sigmas = settings.activity_sigmas
    source = f"z vs {replays} day-bootstraps of the reference ({len(values):,} days); alert at {sigmas:g}σ"
    last = days.max().date()
    first = last - timedelta(days=settings.activity_history_days + settings.activity_window_days - 1)
    recent = reference[days.dt.date >= first]
    history: dict[str, list[list[int]]] = defaultdict(list)
    pairs = zip(recent["customer_id"], recent["event_time"].dt.date, strict=True)
    for (customer, day), count in Counter(pairs).items():
        history[str(customer)].append([day.toordinal(), count])
    return ActivityReference(
        mean=float(values.mean()),
        scale=float(values.std(ddof=1)) or 1.0,
        threshold=Threshold(value=sigmas, source=source),
        history={customer: sorted(rows) for customer, rows in history.items()},
    )
