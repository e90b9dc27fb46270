"""Drift incidents: one state machine per monitor family, one incident ledger per engine.

A family's :class:`IncidentMachine` decides when that family is in alarm:

* **open** after ``open_after`` consecutive evaluations above the threshold (ratio > 1);
* **update** while open and above its own threshold, when its severity rose or
  ``update_interval_days`` event days passed since its last alert;
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
>>> at = datetime(2011, 6, 1)
>>> [machine.step(ratio, at) for ratio in (1.5, 1.5, 1.2, 0.5, 0.5)]
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

# What to do, by what moved most (the alert's first contribution): the first phrase found in its name.
ACTIONS: tuple[tuple[str, str], ...] = (
    (
        "order value",
        "order values moved most: check prices, currency and discounts in the feed for this "
        "period; if the change is real and lasts, refit the model (python -m worker refresh) so monetary "
        "segments follow it",
    ),
    (
        "lines per invoice",
        "basket size moved: check whether invoices are split or merged upstream, or the catalogue or checkout "
        "changed; if real and lasting, refit the model (python -m worker refresh)",
    ),
    (
        "loyal customers",
        "customers who bought regularly have slowed down or stopped: see which segments lost them "
        "(python -m worker segments), check the feed's coverage of these days, then retention actions",
    ),
    (
        "share",
        "customers' behaviour now spreads differently over the model's segments (shares named in contributions): "
        "review whether the segments still describe them and refit (python -m worker refresh or "
        "SEG_REFRESH_POLICY=refresh)",
    ),
)
CLOSED_ACTION = "none: the statistic is back below the closing level"


def suggested_action(contributions: list[Contribution]) -> str:
    """The action for what moved most; a generic one when nothing is named."""
    if contributions:
        for phrase, action in ACTIONS:
            if phrase in contributions[0].name:
                return action
    return "check the feed for this period and the named statistic against its reference"


@dataclass
class IncidentMachine:
    """The incident state of one monitor; JSON-able through :meth:`state_dict`.

    An ``update`` is sent only while the family is above its own threshold, and only
    when its severity rose (once ``severity_hold_days`` passed since its last alert)
    or ``update_interval_days`` passed (then with the severity of the moment): a
    family hovering below its level stays quiet until it closes, and one flickering
    between warning and critical sends one update, not one per flicker.
    """

    monitor: str
    settings: DriftSettings
    close_after: int | None = None  # evaluations below the closing level that close; None: settings.close_after
    open_after: int | None = None  # consecutive evaluations above the level that open; None: settings.open_after
    is_open: bool = False
    above: int = 0
    below: int = 0
    severity: Severity = "info"
    bump_left: int = 0
    last_alert: str | None = None  # event time of the family's last alert (ISO), for the update rules

    def bump(self) -> None:
        """A fast-tier detection: raise severity by one level for the next evaluations."""
        self.bump_left = self.settings.adwin_bump_evaluations

    def step(self, ratio: float, at: datetime) -> State | None:
        """Advance on one evaluation's value/threshold ratio at event time ``at``; the alert state to send, if any."""
        severity = self._severity(ratio)
        self.bump_left = max(0, self.bump_left - 1)
        if not self.is_open:
            self.above = self.above + 1 if ratio > 1.0 else 0
            if self.above < (self.open_after or self.settings.open_after):
                return None
            self.is_open, self.below, self.severity = True, 0, severity
            return self._sent("open", at)
        self.below = self.below + 1 if ratio < self.settings.close_ratio else 0
        if self.below >= (self.close_after or self.settings.close_after):
            self.is_open, self.above, self.severity = False, 0, "info"
            return self._sent("closed", at)
        if ratio <= 1.0:
            return None
        since = (at - datetime.fromisoformat(self.last_alert)).total_seconds() / 86_400.0 if self.last_alert else 1e9
        # Severity rising is news; falling back (still above the threshold) waits for the interval.
        rose = LEVELS.index(severity) > LEVELS.index(self.severity) and since >= self.settings.severity_hold_days
        if rose or since >= self.settings.update_interval_days:
            self.severity = severity
            return self._sent("update", at)
        return None

    def _sent(self, state: State, at: datetime) -> State:
        self.last_alert = at.isoformat()
        return state

    def _severity(self, ratio: float) -> Severity:
        level = 0 if ratio <= 1.0 else 1 if ratio < self.settings.critical_ratio else 2
        if self.bump_left:
            level = min(level + 1, 2)
        return LEVELS[level]

    def state_dict(self) -> dict[str, Any]:
        skip = ("monitor", "settings", "close_after", "open_after")
        return {key: value for key, value in asdict(self).items() if key not in skip}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; keys of older formats (``incident``, ``since_update``) are ignored."""
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
    """The wire alert for one incident event, reported by the family of ``evaluation`` with its own severity.

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
        contributions=[*evaluation.contributions, *extra],
        segment_shares_reference=context.segment_shares_reference,
        segment_shares_now=shares_now,
        contributors=list(ledger.contributors),
        suggested_action=CLOSED_ACTION if state == "closed" else suggested_action(evaluation.contributions),
    )
