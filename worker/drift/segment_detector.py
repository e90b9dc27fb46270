"""Segment-structure monitor: where updated customers land, who moves where, how far from their centroid.

The snapshot's shares and distance bins describe *all* customers at the cutoff;
the customers updated in a window are the active ones, who sit in other segments
and closer to their centroids, so comparing them with the snapshot would fire on
a stationary stream. The baseline therefore comes from the first
``calibration_windows`` tumbling windows of the stream (nothing is evaluated
before), binned with the snapshot's distance edges. Shares and distances are
scored by PSI against that baseline (threshold mean + kσ over the calibration
windows); each transition A→B by the z-score of its rate (moves / updates of A)
against the rates of the calibration windows.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from shared.contracts.drift_alert import Contribution, EventWindow
from shared.contracts.model_snapshot import QuantileBins
from worker.drift.evaluation import Check, Evaluation, top_contributions
from worker.drift.reference import bin_shares, quantile_bins
from worker.drift.settings import DriftSettings
from worker.drift.statistics import Threshold, calibrated, psi

MONITOR = "segment_structure"

# (event_time, customer_id, segment before (None for a new customer), segment after, distance)
Assignment = tuple[datetime, str, int | None, int, float]


class TransitionRate(BaseModel):
    """Rate of moves A→B per update of A across the calibration windows."""

    mean: float
    var: float


class SegmentBaseline(BaseModel):
    """What the first stream windows looked like, and the levels derived from them."""

    shares: dict[str, float]
    distance_edges: list[float]
    distance_shares: list[float]
    distance_mean: float
    distance_std: float
    transitions: dict[str, TransitionRate]
    updates_of: dict[str, int]
    shares_threshold: Threshold
    distance_threshold: Threshold
    transition_threshold: Threshold


def _shares(window: list[Assignment], segments: list[str]) -> list[float]:
    counts = Counter(str(row[3]) for row in window)
    return [counts[segment] / len(window) for segment in segments]


def _transition_rates(window: list[Assignment]) -> dict[str, float]:
    """moves A→B / updates of A, keyed "A>B", for A ≠ B."""
    updates = Counter(row[2] for row in window if row[2] is not None)
    moves = Counter((row[2], row[3]) for row in window if row[2] is not None and row[2] != row[3])
    return {f"{a}>{b}": count / updates[a] for (a, b), count in moves.items()}


def _baseline(windows: list[list[Assignment]], bins: QuantileBins | None, settings: DriftSettings) -> SegmentBaseline:
    pooled = [row for window in windows for row in window]
    segments = sorted({str(row[3]) for row in pooled} | {str(row[2]) for row in pooled if row[2] is not None})
    shares = dict(zip(segments, _shares(pooled, segments), strict=True))
    distances = np.array([row[4] for row in pooled])
    edges = (bins or quantile_bins(distances)).edges
    distance_shares = bin_shares(distances, edges)
    rates = [_transition_rates(window) for window in windows]
    keys = sorted({key for window_rates in rates for key in window_rates})
    transitions = {
        key: TransitionRate(mean=float(np.mean(values)), var=float(np.var(values, ddof=1)))
        for key in keys
        for values in [[window_rates.get(key, 0.0) for window_rates in rates]]
    }
    source = f"first {len(windows)} stream windows of {settings.segment_window:,} assignments"
    share_psi = [psi(_shares(window, segments), list(shares.values())) for window in windows]
    distance_psi = [psi(bin_shares(np.array([row[4] for row in window]), edges), distance_shares) for window in windows]
    return SegmentBaseline(
        shares=shares,
        distance_edges=edges,
        distance_shares=distance_shares,
        distance_mean=float(distances.mean()),
        distance_std=float(distances.std()) or 1.0,
        transitions=transitions,
        updates_of={key: int(n) for key, n in Counter(str(row[2]) for row in pooled if row[2] is not None).items()},
        shares_threshold=calibrated(share_psi, settings.threshold_sigmas, source),
        distance_threshold=calibrated(distance_psi, settings.threshold_sigmas, source),
        transition_threshold=Threshold(value=settings.transition_z, source=f"|z| of a rate vs the {source}"),
    )


class SegmentMonitor:
    """Sliding count window of assignments; calibrates itself on the first windows of the stream."""

    def __init__(self, distance_bins: QuantileBins | None, settings: DriftSettings) -> None:
        self.distance_bins = distance_bins
        self.settings = settings
        self.window: deque[Assignment] = deque(maxlen=settings.segment_window)
        self.calibration: list[Assignment] = []
        self.baseline: SegmentBaseline | None = None
        self.since_evaluation = 0

    def add(self, row: Assignment) -> Evaluation | None:
        """Add one assignment; an evaluation every ``segment_step`` once calibrated."""
        self.window.append(row)
        if self.baseline is None:
            self._calibrate(row)
            return None
        self.since_evaluation += 1
        if self.since_evaluation < self.settings.segment_step:
            return None
        self.since_evaluation = 0
        return self._evaluate(list(self.window), self.baseline)

    def shares_now(self) -> dict[str, float]:
        """Segment shares of the customers updated in the current window."""
        counts = Counter(str(row[3]) for row in self.window)
        return {segment: round(count / len(self.window), 4) for segment, count in sorted(counts.items())}

    def _calibrate(self, row: Assignment) -> None:
        self.calibration.append(row)
        size, count = self.settings.segment_window, self.settings.calibration_windows
        if len(self.calibration) == size * count:
            windows = [self.calibration[start : start + size] for start in range(0, size * count, size)]
            self.baseline = _baseline(windows, self.distance_bins, self.settings)
            self.calibration = []

    def _evaluate(self, window: list[Assignment], baseline: SegmentBaseline) -> Evaluation:
        segments = sorted(set(baseline.shares) | {str(row[3]) for row in window})
        now = _shares(window, segments)
        reference = [baseline.shares.get(segment, 0.0) for segment in segments]
        distances = np.array([row[4] for row in window])
        distance_now = bin_shares(distances, baseline.distance_edges)
        transition_z = self._transition_z(window, baseline)
        checks = [
            Check("psi", "segment_shares", psi(now, reference), *_level(baseline.shares_threshold)),
            Check(
                "psi",
                "distance_to_centroid",
                psi(distance_now, baseline.distance_shares),
                *_level(baseline.distance_threshold),
            ),
            Check(
                "z-score",
                "transition_rate",
                max((abs(z) for z in transition_z.values()), default=0.0),
                *_level(baseline.transition_threshold),
            ),
        ]
        contributions = [
            *(
                Contribution(name=f"segment {s} share", shift=n - r)
                for s, n, r in zip(segments, now, reference, strict=True)
            ),
            *(Contribution(name=f"transition {key} (z)", shift=z) for key, z in transition_z.items()),
            Contribution(
                name="distance mean (baseline σ)",
                shift=(distances.mean() - baseline.distance_mean) / baseline.distance_std,
            ),
        ]
        window_span = EventWindow(
            start=min(row[0] for row in window),
            end=max(row[0] for row in window),
            events=len(window),
            customers=len({row[1] for row in window}),
        )
        worst = max(checks, key=lambda check: check.ratio)
        return Evaluation(MONITOR, worst, window_span, top_contributions(contributions))

    def _transition_z(self, window: list[Assignment], baseline: SegmentBaseline) -> dict[str, float]:
        """z of each A→B rate, for sources A updated at least ``min_segment_size`` times in the window.

        The variance adds the binomial noise of this window's rate to the spread seen in
        calibration, so a move never seen before needs many cases to look alarming.
        """
        updates = Counter(str(row[2]) for row in window if row[2] is not None)
        rates = {key: 0.0 for key in baseline.transitions} | _transition_rates(window)
        scores = {}
        for key, rate in rates.items():
            source = key.split(">")[0]
            n = updates.get(source, 0)
            if n < self.settings.min_segment_size:
                continue
            known = baseline.transitions.get(key, TransitionRate(mean=0.0, var=0.0))
            p = max(known.mean, 1.0 / (baseline.updates_of.get(source, 0) + 1))
            spread = float(np.sqrt(known.var + p * (1 - p) / n)) or 1.0 / n  # a rate always 0 or 1 so far
            scores[key] = (rate - known.mean) / spread
        return scores

    def state_dict(self) -> dict[str, Any]:
        def rows(items: list[Assignment]) -> list[list[Any]]:
            return [[moment.isoformat(), *rest] for moment, *rest in items]

        return {
            "window": rows(list(self.window)),
            "calibration": rows(self.calibration),
            "baseline": None if self.baseline is None else self.baseline.model_dump(mode="json"),
            "since_evaluation": self.since_evaluation,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        def rows(items: list[list[Any]]) -> list[Assignment]:
            return [
                (datetime.fromisoformat(moment), customer, before, after, distance)
                for moment, customer, before, after, distance in items
            ]

        self.window.clear()
        self.window.extend(rows(state["window"]))
        self.calibration = rows(state["calibration"])
        self.baseline = None if state["baseline"] is None else SegmentBaseline.model_validate(state["baseline"])
        self.since_evaluation = state["since_evaluation"]


def _level(threshold: Threshold) -> tuple[float, str]:
    return threshold.value, threshold.source
