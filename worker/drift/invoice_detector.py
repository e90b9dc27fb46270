"""Per-invoice behaviour monitor: order value (log), lines, days since the previous purchase.

A sliding window of the last ``invoice_window`` invoices is compared with the
reference every ``invoice_step`` invoices, by PSI and by normalised Wasserstein
distance. These are per-invoice statistics, so they are stationary when
behaviour is, unlike lifetime features, which grow with every day of tenure.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime
from typing import Any

import numpy as np

from shared.contracts.drift_alert import Contribution, EventWindow
from worker.drift.calibration import StatisticReference
from worker.drift.evaluation import Check, Evaluation, top_contributions, worst_check
from worker.drift.invoice_table import STATISTICS
from worker.drift.reference import bin_shares
from worker.drift.settings import DriftSettings

MONITOR = "invoice_behaviour"


def _json_number(value: float) -> float | None:
    """Strict JSON has no NaN: a first purchase's missing gap travels as null."""
    return None if math.isnan(value) else value


def _bin_name(statistic: str, edges: list[float], index: int) -> str:
    return f"{statistic} in [{edges[index]:.4g}, {edges[index + 1]:.4g}]"


class InvoiceMonitor:
    """Sliding count window of invoices against the calibrated reference."""

    def __init__(self, references: dict[str, StatisticReference], settings: DriftSettings) -> None:
        self.references = references
        self.settings = settings
        self.window: deque[tuple[datetime, str, float, float, float]] = deque(maxlen=settings.invoice_window)
        self.since_evaluation = 0

    def add(self, event_time: datetime, customer_id: str, values: tuple[float, float, float]) -> Evaluation | None:
        """Add one invoice (days NaN on a first purchase); an evaluation every ``invoice_step`` full windows."""
        self.window.append((event_time, customer_id, *values))
        self.since_evaluation += 1
        if len(self.window) < self.settings.invoice_window or self.since_evaluation < self.settings.invoice_step:
            return None
        self.since_evaluation = 0
        return self._evaluate()

    def _evaluate(self) -> Evaluation | None:
        columns = np.array([row[2:] for row in self.window], dtype=float)
        checks, contributions = [], []
        for position, name in enumerate(STATISTICS):
            values = columns[:, position]
            values = values[~np.isnan(values)]
            if len(values) < self.settings.min_events:
                continue
            reference = self.references[name]
            checks.append(self._check("psi", name, reference.psi_of(values), reference, "psi"))
            checks.append(self._check("wasserstein", name, reference.wasserstein_of(values), reference, "wasserstein"))
            contributions.extend(self._contributions(name, values, reference))
        worst = worst_check(checks)
        if worst is None:
            return None
        window = EventWindow(
            start=self.window[0][0],
            end=self.window[-1][0],
            events=len(self.window),
            customers=len({row[1] for row in self.window}),
        )
        return Evaluation(MONITOR, worst, window, top_contributions(contributions))

    @staticmethod
    def _check(method: str, name: str, value: float, reference: StatisticReference, field: str) -> Check:
        threshold = getattr(reference, field)
        return Check(method, name, value, threshold.value, threshold.source)

    @staticmethod
    def _contributions(name: str, values: np.ndarray, reference: StatisticReference) -> list[Contribution]:
        """Mean shift in reference-spread units, and each bin's share change."""
        shift = Contribution(
            name=f"{name} mean (spread units)", shift=(values.mean() - reference.mean) / reference.scale
        )
        changes = np.asarray(bin_shares(values, reference.edges)) - np.asarray(reference.shares)
        bins = [Contribution(name=_bin_name(name, reference.edges, i), shift=float(c)) for i, c in enumerate(changes)]
        return [shift, *bins]

    def state_dict(self) -> dict[str, Any]:
        rows = [[moment.isoformat(), customer, *map(_json_number, values)] for moment, customer, *values in self.window]
        return {"window": rows, "since_evaluation": self.since_evaluation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.window.clear()
        for moment, customer, *values in state["window"]:
            self.window.append(
                (datetime.fromisoformat(moment), customer, *(math.nan if v is None else v for v in values))
            )
        self.since_evaluation = state["since_evaluation"]
