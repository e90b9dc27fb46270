"""Segment-structure monitor: how the scored customers' feature vectors spread over the bootstrap model's centroids.

The live model's centroids move with the stream (incremental k-means), and each
customer matures (tenure, frequency and lifetime spend grow), so the live
assignments drift on a stationary stream: the earlier monitor fired on every
control. This one places every scored customer's vector on the **fixed** centroids
of the model version it watches (the snapshot), by the features that do not mature
(``segment_features``: average order value, lines per invoice, mean monthly spend),
and compares the window's shares over them, by PSI, with the same measure on the
customers scored in the last ``segment_reference_days`` of the reference window
(what a worker computed there, replayed). Why not all features: see the settings.
Its level is set by expected run length on day-bootstrap replays of those
reference assignments (:mod:`worker.drift.run_length`), like every family's.
"""

from __future__ import annotations

from collections import Counter, deque
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from shared.contracts.drift_alert import Contribution, EventWindow
from worker.drift.evaluation import Check, Evaluation, cohens_h, ranked
from worker.drift.statistics import smoothed_psi

MONITOR = "segment_structure"
STATISTIC = "shares_over_fixed_centroids"


class SegmentReference(BaseModel):
    """Fixed centroids (the snapshot's), their names, the features used, the reference shares and the level."""

    ids: list[int]
    names: list[str]
    centroids: list[list[float]]
    features: list[int]  # vector positions by which customers are placed (features that do not mature)
    feature_names: list[str]
    shares: list[float]
    threshold: float
    source: str

    def labels(self, vectors: np.ndarray) -> np.ndarray:
        """Index of the nearest fixed centroid per vector (rows), on :attr:`features` only."""
        centroids = np.asarray(self.centroids)[:, self.features]
        distances = ((vectors[:, None, self.features] - centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)


def evaluate_series(reference: SegmentReference, labels: np.ndarray, size: int, step: int) -> np.ndarray:
    """The PSI at every evaluation of a stream of labels (what :class:`SegmentMonitor` computes), vectorised."""
    onehot = np.eye(len(reference.shares))[labels]
    cumulative = np.vstack([np.zeros((1, onehot.shape[1])), np.cumsum(onehot, axis=0)])
    ends = np.arange(step, len(labels) + 1, step)
    values = smoothed_psi(cumulative[ends] - cumulative[np.maximum(ends - size, 0)], size, reference.shares)
    values[ends < size] = 0.0
    return values[:, None]


def label_frame(reference: SegmentReference, assignments: pd.DataFrame) -> pd.DataFrame:
    """event_time, customer_id and the fixed-centroid label of assignments that carry a ``vector``."""
    vectors = np.array(assignments["vector"].tolist(), dtype=float)
    return pd.DataFrame(
        {
            "event_time": assignments["event_time"].to_numpy(),
            "customer_id": assignments["customer_id"].to_numpy(),
            "label": reference.labels(vectors),
        }
    )


class SegmentMonitor:
    """Sliding count window of scored customers' fixed-centroid labels."""

    def __init__(self, reference: SegmentReference, size: int, step: int) -> None:
        self.reference = reference
        self.size, self.step = size, step
        self.window: deque[tuple[datetime, str, int]] = deque(maxlen=size)
        self.since_evaluation = 0

    def add(self, event_time: datetime, customer_id: str, vector: list[float]) -> Evaluation | None:
        """Add one scored customer's vector; an evaluation every ``step`` once the window is full."""
        label = int(self.reference.labels(np.asarray([vector], dtype=float))[0])
        self.window.append((event_time, customer_id, label))
        self.since_evaluation += 1
        if len(self.window) < self.size or self.since_evaluation < self.step:
            return None
        self.since_evaluation = 0
        return self._evaluate()

    def shares_now(self) -> dict[str, float]:
        """Shares of the window's customers over the fixed centroids, by segment name."""
        if not self.window:
            return {}
        counts = Counter(row[2] for row in self.window)
        names = self.reference.names
        return {names[label]: round(count / len(self.window), 4) for label, count in sorted(counts.items())}

    def _evaluate(self) -> Evaluation:
        reference = self.reference
        counts = np.bincount([row[2] for row in self.window], minlength=len(reference.shares)).astype(float)
        value = float(smoothed_psi(counts[None, :], self.size, reference.shares)[0])
        now = counts / self.size
        contributions = [
            Contribution(
                name=f"share of segment '{name}'",
                unit="share",
                reference=round(share, 4),
                current=round(float(current), 4),
                shift=cohens_h(float(current), share),
            )
            for name, share, current in zip(reference.names, reference.shares, now, strict=True)
        ]
        window = EventWindow(
            start=self.window[0][0],
            end=self.window[-1][0],
            events=len(self.window),
            customers=len({row[1] for row in self.window}),
        )
        check = Check("psi", STATISTIC, value, reference.threshold, reference.source)
        return Evaluation(MONITOR, check, window, ranked(contributions))

    def state_dict(self) -> dict[str, Any]:
        rows = [[moment.isoformat(), customer, label] for moment, customer, label in self.window]
        return {"window": rows, "since_evaluation": self.since_evaluation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window.clear()
        for moment, customer, label in state["window"]:
            self.window.append((datetime.fromisoformat(moment), customer, label))
        self.since_evaluation = state["since_evaluation"]
