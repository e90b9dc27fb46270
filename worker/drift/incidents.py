"""Drift incidents: one state machine per monitor, turning evaluations into open → update* → closed alerts.

* **open** after ``open_after`` consecutive evaluations above the threshold (ratio > 1);
* **update** while open, when severity changed (at most every ``update_min_gap``
  evaluations) or every ``update_every`` evaluations as a heartbeat;
* **closed** after ``close_after`` consecutive evaluations below
  ``close_ratio``·threshold: hysteresis, so a value hovering at the threshold
  does not flap between incidents.

A fast-tier detection (:mod:`worker.drift.fast_tier`) bumps the severity of the
next ``adwin_bump_evaluations`` evaluations by one level; it cannot open an incident.

>>> from worker.drift.settings import DriftSettings
>>> machine = IncidentMachine("demo", DriftSettings(open_after=2, close_after=2))
>>> [machine.step(ratio) for ratio in (1.5, 1.5, 1.2, 0.5, 0.5)]
[None, 'open', None, None, 'closed']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from shared.contracts.drift_alert import Contribution, DriftAlert
from worker.drift.evaluation import Evaluation
from worker.drift.settings import DriftSettings

State = Literal["open", "update", "closed"]
Severity = Literal["info", "warning", "critical"]
LEVELS: tuple[Severity, ...] = ("info", "warning", "critical")

ACTIONS = {
    "invoice_behaviour": (
        "check the feed for this period (prices, units, duplicated or missing invoices); "
        "if behaviour really changed and the shift lasts, refit the model: python -m worker refresh"
    ),
    "customer_activity": (
        "customers who bought regularly have slowed down or stopped: check which segments lost them "
        "(python -m worker segments), the feed's coverage of these days, and retention actions"
    ),
    "segment_structure": (
        "segment structure moved for a lasting period: refit the model on the current customers "
        "(python -m worker refresh, or SEG_REFRESH_POLICY=refresh) and review segment names"
    ),
}
CLOSED_ACTION = "none: the statistic is back below the closing level"


@dataclass
class IncidentMachine:
    """The incident state of one monitor; JSON-able through :meth:`state_dict`."""

    monitor: str
    settings: DriftSettings
    close_after: int | None = None  # evaluations below the closing level that close; None: settings.close_after
    incident: int = 0
    is_open: bool = False
    above: int = 0
    below: int = 0
    since_update: int = 0
    severity: Severity = "info"
    bump_left: int = 0

    def bump(self) -> None:
        """A fast-tier detection: raise severity by one level for the next evaluations."""
        self.bump_left = self.settings.adwin_bump_evaluations

    def step(self, ratio: float) -> State | None:
        """Advance on one evaluation's value/threshold ratio; the alert state to send, if any."""
        severity = self._severity(ratio)
        self.bump_left = max(0, self.bump_left - 1)
        if not self.is_open:
            self.above = self.above + 1 if ratio > 1.0 else 0
            if self.above < self.settings.open_after:
                return None
            self.incident += 1
            self.is_open, self.below, self.since_update, self.severity = True, 0, 0, severity
            return "open"
        self.below = self.below + 1 if ratio < self.settings.close_ratio else 0
        self.since_update += 1
        if self.below >= (self.close_after or self.settings.close_after):
            self.is_open, self.above, self.severity = False, 0, "info"
            return "closed"
        moved = severity != self.severity and self.since_update >= self.settings.update_min_gap
        if moved or self.since_update >= self.settings.update_every:
            self.severity, self.since_update = severity, 0
            return "update"
        return None

    def _severity(self, ratio: float) -> Severity:
        level = 0 if ratio <= 1.0 else 1 if ratio < self.settings.critical_ratio else 2
        if self.bump_left:
            level = min(level + 1, 2)
        return LEVELS[level]

    @property
    def incident_id(self) -> str:
        return f"{self.monitor}-{self.incident}"

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key not in ("monitor", "settings", "close_after")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass(frozen=True)
class AlertContext:
    """What every alert of one engine shares: the model it watches."""

    model_version: int
    reference_period: tuple[datetime, datetime]
    segment_shares_reference: dict[str, float]


def build_alert(
    machine: IncidentMachine,
    state: State,
    evaluation: Evaluation,
    context: AlertContext,
    extra: list[Contribution],
    shares_now: dict[str, float],
) -> DriftAlert:
    """The wire alert for one incident event; ids are deterministic (model version, monitor, counters)."""
    worst = evaluation.worst
    incident_id = f"v{context.model_version}-{machine.incident_id}"
    return DriftAlert(
        alert_id=f"{incident_id}-{state}-{evaluation.window.end.isoformat()}",
        incident_id=incident_id,
        state=state,
        severity=machine.severity if state != "closed" else "info",
        monitor=evaluation.monitor,
        method=worst.method,
        statistic=worst.statistic,
        value=round(worst.value, 6),
        threshold=worst.threshold,
        threshold_source=worst.threshold_source,
        window=evaluation.window,
        reference_period=context.reference_period,
        model_version=context.model_version,
        contributions=[*extra, *evaluation.contributions],
        segment_shares_reference=context.segment_shares_reference,
        segment_shares_now=shares_now,
        suggested_action=CLOSED_ACTION if state == "closed" else ACTIONS[evaluation.monitor],
    )
