"""Per-invoice behaviour monitor: order value and lines per invoice, in sliding windows of several sizes.

Every ``invoice_step`` invoices, each window (the last 50, 100 and 200 invoices by
default) is compared with the reference by two checks per statistic: PSI over the
reference's deciles (shape) and the standardised mean shift (location, on the log
scale, values clipped at the reference's 0.5% and 99.5% quantiles so one huge
invoice cannot decide). Short windows see a large shift within tens of invoices,
long ones a small one; the run-length calibration (:mod:`worker.drift.run_length`)
sets one level for all of them. These are per-invoice statistics, so they are
stationary when behaviour is, unlike lifetime features that grow with tenure.

Not monitored: the days since the customer's previous purchase. The data start
distorts it (its monthly mean grows from 4 days in December to 44 in July only
because earlier purchases are unseen), so any reference window near the start
differs from later windows by construction. Customers buying less often is what
the customer-activity family measures, against each customer's own pace.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from shared.contracts.drift_alert import Contribution, EventWindow
from shared.features.scaling import signed_log1p
from worker.drift.evaluation import Check, Evaluation, cohens_d, ranked
from worker.drift.statistics import smoothed_psi

MONITOR = "invoice_behaviour"
# (method, statistic) in the order of a window's checks.
CHECKS: tuple[tuple[str, str], ...] = (
    ("psi", "log_order_value"),
    ("mean-z", "log_order_value"),
    ("psi", "lines_per_invoice"),
    ("mean-z", "lines_per_invoice"),
)


class ScaleReference(BaseModel):
    """One statistic in the reference: decile edges and shares, clip bounds, mean and σ of the clipped values."""

    edges: list[float]
    shares: list[float]
    low: float
    high: float
    mean: float
    sd: float

    def bins(self, values: np.ndarray) -> np.ndarray:
        """Bin index per value; values outside the edges fall into the first or last bin."""
        return np.searchsorted(np.asarray(self.edges[1:-1]), values, side="right")

    def clipped(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, self.low, self.high)


class InvoiceReference(BaseModel):
    """The invoice family's reference and its calibrated thresholds (one per window × check)."""

    order_value: ScaleReference  # on signed log1p(order value in £)
    lines: ScaleReference  # edges on lines, mean and σ on log1p(lines)
    median_order_value: float
    mean_lines: float
    windows: list[int]
    thresholds: list[float]  # windows × CHECKS, row-major
    source: str


def log_lines(lines: np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(lines, dtype=float))


def window_checks(
    reference: InvoiceReference,
    value_counts: np.ndarray,
    line_counts: np.ndarray,
    value_sums: np.ndarray,
    line_sums: np.ndarray,
    size: int,
) -> np.ndarray:
    """The four checks of windows of ``size`` invoices from their sufficient statistics (one row per window)."""
    rows = []
    for counts, sums, scale in (
        (value_counts, value_sums, reference.order_value),
        (line_counts, line_sums, reference.lines),
    ):
        rows.append(smoothed_psi(counts, size, scale.shares))
        rows.append(np.abs(sums / size - scale.mean) / (scale.sd / np.sqrt(size)))
    return np.stack(rows, axis=1)


def counts_of(scale: ScaleReference, values: np.ndarray) -> np.ndarray:
    """One-hot bin membership, invoices × bins."""
    return np.eye(len(scale.edges) - 1)[scale.bins(values)]


class InvoiceMonitor:
    """Sliding count windows of invoices against the calibrated reference."""

    def __init__(self, reference: InvoiceReference, step: int) -> None:
        self.reference = reference
        self.step = step
        self.window: deque[tuple[datetime, str, float, float]] = deque(maxlen=max(reference.windows))
        self.since_evaluation = 0

    def add(self, event_time: datetime, customer_id: str, order_value: float, lines: float) -> Evaluation | None:
        """Add one invoice; an evaluation every ``step`` invoices once the smallest window is full."""
        self.window.append((event_time, customer_id, order_value, lines))
        self.since_evaluation += 1
        if len(self.window) < min(self.reference.windows) or self.since_evaluation < self.step:
            return None
        self.since_evaluation = 0
        return self._evaluate()

    def _evaluate(self) -> Evaluation:
        reference = self.reference
        rows = list(self.window)
        values = signed_log1p(np.array([row[2] for row in rows]))
        lines = np.array([row[3] for row in rows])
        checks: list[Check] = []
        sizes: list[int] = []
        for position, size in enumerate(reference.windows):
            if len(rows) < size:
                continue
            tail_values, tail_lines = values[-size:], lines[-size:]
            matrix = window_checks(
                reference,
                counts_of(reference.order_value, tail_values).sum(axis=0, keepdims=True),
                counts_of(reference.lines, tail_lines).sum(axis=0, keepdims=True),
                np.array([reference.order_value.clipped(tail_values).sum()]),
                np.array([reference.lines.clipped(log_lines(tail_lines)).sum()]),
                size,
            )[0]
            for index, (method, statistic) in enumerate(CHECKS):
                threshold = reference.thresholds[position * len(CHECKS) + index]
                checks.append(
                    Check(method, statistic, float(matrix[index]), threshold, f"{reference.source}; window {size}")
                )
                sizes.append(size)
        best = max(range(len(checks)), key=lambda i: checks[i].ratio)
        size = sizes[best]
        tail = rows[-size:]
        window = EventWindow(start=tail[0][0], end=tail[-1][0], events=size, customers=len({row[1] for row in tail}))
        return Evaluation(MONITOR, checks[best], window, self._contributions(values[-size:], lines[-size:]))

    def _contributions(self, values: np.ndarray, lines: np.ndarray) -> list[Contribution]:
        """Median order value (£) and lines per invoice, reference and now; Cohen's d on the log scale."""
        reference = self.reference
        order, basket = reference.order_value, reference.lines
        median_now = float(np.median(np.sign(values) * np.expm1(np.abs(values))))
        return ranked(
            [
                Contribution(
                    name="median order value",
                    unit="£",
                    reference=round(reference.median_order_value, 2),
                    current=round(median_now, 2),
                    shift=cohens_d(float(order.clipped(values).mean()), order.mean, order.sd),
                ),
                Contribution(
                    name="lines per invoice (mean)",
                    unit="lines",
                    reference=round(reference.mean_lines, 2),
                    current=round(float(lines.mean()), 2),
                    shift=cohens_d(float(basket.clipped(log_lines(lines)).mean()), basket.mean, basket.sd),
                ),
            ]
        )

    def state_dict(self) -> dict[str, Any]:
        rows = [[moment.isoformat(), customer, value, lines] for moment, customer, value, lines in self.window]
        return {"window": rows, "since_evaluation": self.since_evaluation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window.clear()
        for moment, customer, value, lines in state["window"]:
            self.window.append((datetime.fromisoformat(moment), customer, value, lines))
        self.since_evaluation = state["since_evaluation"]


def evaluate_series(reference: InvoiceReference, logged: np.ndarray, lines: np.ndarray, step: int) -> np.ndarray:
    """Every check at every evaluation of a stream of invoices (what :class:`InvoiceMonitor` computes), vectorised.

    ``logged`` is signed log1p of the order values. Row ``i`` is the evaluation after
    invoice ``(i + 1)·step``; a window not yet full scores 0.
    """
    cumulative = [
        np.concatenate([np.zeros((1, *array.shape[1:])), np.cumsum(array, axis=0)])
        for array in (
            counts_of(reference.order_value, logged),
            counts_of(reference.lines, lines),
            reference.order_value.clipped(logged),
            reference.lines.clipped(log_lines(lines)),
        )
    ]
    ends = np.arange(step, len(logged) + 1, step)
    blocks = []
    for size in reference.windows:
        starts = np.maximum(ends - size, 0)
        value_counts, line_counts, value_sums, line_sums = (c[ends] - c[starts] for c in cumulative)
        block = window_checks(reference, value_counts, line_counts, value_sums, line_sums, size)
        block[ends < size] = 0.0
        blocks.append(block)
    return np.hstack(blocks)
