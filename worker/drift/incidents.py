"""Drift incidents: one state machine per monitor family, one incident ledger per engine.

A family's :class:`IncidentMachine` decides when that family is in alarm:

* **open** after ``open_after`` consecutive evaluations above the threshold (ratio > 1);
* **update** while open, when severity changed (at most every ``update_min_gap``
  evaluations) or every ``update_every`` evaluations as a heartbeat;
* **closed** after ``close_after`` consecutive evaluations below
  ``close_ratio``·threshold: hysteresis, so a value hovering at the threshold
  does not flap between incidents.

The :class:`IncidentLedger` turns the families' transitions into incidents. One drift
episode often moves several families (a churn wave lowers the loyal customers' pace
*and* shifts the mix of invoices), and a lasting drift may dip below the closing level
for a while; an operator should get one incident for it, not one per family or per dip.
So a family that opens while an incident is open **joins** it (``update``, the family
added to the contributors), and a family that opens within ``reopen_window_days`` event
days of the incident's close **re-opens** it (``open`` again, same incident id). The
incident closes when its last active family closes. Consumers count incidents by
``incident_id``, not by ``open`` alerts.

A fast-tier detection (:mod:`worker.drift.fast_tier`) bumps the severity of the
next ``adwin_bump_evaluations`` evaluations by one level; it cannot open an incident.

>>> from worker.drift.settings import DriftSettings
>>> machine = IncidentMachine("demo", DriftSettings(open_after=2, close_after=2))
>>> [machine.step(ratio) for ratio in (1.5, 1.5, 1.2, 0.5, 0.5)]
[None, 'open', None, None, 'closed']
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal

from shared.contracts.drift_alert import Contribution, Contributor, DriftAlert
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

    def state_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key not in ("monitor", "settings", "close_after")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; keys of older formats (the per-family ``incident`` counter) are ignored."""
        known = {item.name for item in fields(self)}
        for key, value in state.items():
            if key in known:
                setattr(self, key, value)


@dataclass
class IncidentLedger:
    """The engine's incidents: at most one open at a time, fed by every family; JSON-able.

    ``step`` takes a family's transition (from its :class:`IncidentMachine`) and returns
    the incident's: a family opening while the incident is open joins it (``update``);
    one opening within ``reopen_window`` of the close re-opens it (``open``, same id);
    otherwise a new incident opens. A family closing leaves the incident open (``update``)
    while another family is still active; the last one closes it.

    >>> ledger = IncidentLedger(timedelta(days=7))
    >>> day = lambda n: datetime(2011, 6, n)
    >>> [ledger.step("a", "open", "psi", "x", day(1)), ledger.step("b", "open", "z", "y", day(2))]
    ['open', 'update']
    >>> [ledger.step("a", "closed", "psi", "x", day(3)), ledger.step("b", "closed", "z", "y", day(4))]
    ['update', 'closed']
    >>> ledger.step("a", "open", "psi", "x", day(9)), ledger.number   # 5 days after the close: re-opened
    ('open', 1)
    """

    reopen_window: timedelta
    number: int = 0
    is_open: bool = False
    closed_at: datetime | None = None
    contributors: list[Contributor] = field(default_factory=list)

    def step(self, monitor: str, state: State, method: str, statistic: str, at: datetime) -> State | None:
        """The incident's state after ``monitor``'s transition ``state`` at event time ``at``."""
        if state == "open":
            return self._family_opened(monitor, method, statistic, at)
        if not self.is_open or not any(c.monitor == monitor and c.active for c in self.contributors):
            return None  # a family open since before the ledger existed (an older engine state)
        if state == "update":
            return "update"
        self.contributors = [
            c.model_copy(update={"active": False}) if c.monitor == monitor else c for c in self.contributors
        ]
        if any(c.active for c in self.contributors):
            return "update"
        self.is_open, self.closed_at = False, at
        return "closed"

    def _family_opened(self, monitor: str, method: str, statistic: str, at: datetime) -> State:
        joined = Contributor(monitor=monitor, method=method, statistic=statistic, joined=at)
        kept = [c for c in self.contributors if c.monitor != monitor]
        if self.is_open:
            self.contributors = [*kept, joined]
            return "update"
        recent = self.closed_at is not None and at - self.closed_at <= self.reopen_window
        if not recent:
            self.number, kept = self.number + 1, []
        self.is_open, self.contributors = True, [*kept, joined]
        return "open"

    def incident_id(self, model_version: int) -> str:
        return f"v{model_version}-incident-{self.number}"

    def state_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "is_open": self.is_open,
            "closed_at": None if self.closed_at is None else self.closed_at.isoformat(),
            "contributors": [c.model_dump(mode="json") for c in self.contributors],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.number, self.is_open = state["number"], state["is_open"]
        self.closed_at = None if state["closed_at"] is None else datetime.fromisoformat(state["closed_at"])
        self.contributors = [Contributor.model_validate(raw) for raw in state["contributors"]]


@dataclass(frozen=True)
class AlertContext:
    """What every alert of one engine shares: the model it watches."""

    model_version: int
    reference_period: tuple[datetime, datetime]
    segment_shares_reference: dict[str, float]


def build_alert(
    ledger: IncidentLedger,
    severity: Severity,
    state: State,
    evaluation: Evaluation,
    context: AlertContext,
    extra: list[Contribution],
    shares_now: dict[str, float],
) -> DriftAlert:
    """The wire alert for one incident event, reported by the family of ``evaluation``.

    Ids are deterministic (model version, incident number, state, window end, family),
    so a replay after a restart sends the same ids and consumers drop the repeats.
    """
    worst = evaluation.worst
    incident_id = ledger.incident_id(context.model_version)
    return DriftAlert(
        alert_id=f"{incident_id}-{state}-{evaluation.monitor}-{evaluation.window.end.isoformat()}",
        incident_id=incident_id,
        state=state,
        severity=severity if state != "closed" else "info",
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
        contributors=list(ledger.contributors),
        suggested_action=CLOSED_ACTION if state == "closed" else ACTIONS[evaluation.monitor],
    )
