"""Reference of the per-invoice monitor: bins, quantile grid, scale and thresholds per statistic.

Thresholds come from the reference itself: the statistic is computed on
consecutive reference chunks of ``invoice_window`` invoices (nothing drifted
there by definition) and the alert level is mean + ``threshold_sigmas``·σ.
Given raw reference invoices in event order (bootstrap, harness), chunks are real
stretches of time and carry the data's own clumpiness. Given only the snapshot's
decile bins, chunks are drawn i.i.d. from those bins, and the threshold source says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel

from shared.contracts.model_snapshot import ModelSnapshot, QuantileBins
from worker.bootstrap.reference import bin_shares, quantile_bins
from worker.drift.invoice_table import STATISTICS
from worker.drift.settings import DriftSettings
from worker.drift.statistics import Threshold, calibrated, normalised_wasserstein, psi

GRID_POINTS = 101


class StatisticReference(BaseModel):
    """One invoice statistic's reference distribution and its two calibrated thresholds."""

    edges: list[float]
    shares: list[float]
    grid: list[float]
    scale: float
    mean: float
    psi: Threshold
    wasserstein: Threshold

    def psi_of(self, values: np.ndarray) -> float:
        return psi(bin_shares(values, self.edges), self.shares)

    def wasserstein_of(self, values: np.ndarray) -> float:
        return normalised_wasserstein(values, np.asarray(self.grid), self.scale)


def _spread(values: np.ndarray) -> float:
    """Interquartile range in σ units of a normal (robust to the few huge invoices); std if the IQR is 0."""
    q1, q3 = np.quantile(values, [0.25, 0.75])
    return float((q3 - q1) / 1.349) or float(values.std()) or 1.0


def _statistic_reference(
    chunks: list[np.ndarray], bins: QuantileBins, sigmas: float, source: str
) -> StatisticReference:
    values = np.concatenate(chunks)
    grid = np.quantile(values, np.linspace(0.0, 1.0, GRID_POINTS))
    draft = StatisticReference(
        edges=bins.edges,
        shares=bins.shares,
        grid=grid.tolist(),
        scale=_spread(values),
        mean=float(values.mean()),
        psi=Threshold(value=1.0, source=""),
        wasserstein=Threshold(value=1.0, source=""),
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
        result[name] = _statistic_reference(chunks, bins, settings.threshold_sigmas, source)
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
        result[name] = _statistic_reference(chunks, bins, settings.threshold_sigmas, source)
    return result
