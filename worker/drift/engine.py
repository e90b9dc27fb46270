"""The drift engine the worker drives: observations in, incident alerts out.

Call :meth:`DriftEngine.observe_invoice` for every purchase invoice and
:meth:`DriftEngine.observe_assignment` for every customer (re)scored, in any
order within a batch; then :meth:`DriftEngine.advance` with the batch's event-time
watermark (no later observation will be older) to evaluate what it closed and get
the alerts to publish. For the customer-activity (churn) monitor, pass
``activity=calibration.activity_from_invoices(reference_invoices, settings)``;
without it that monitor is off. Persist :meth:`DriftEngine.state_dict` with the batch's
offsets; restore with :meth:`DriftEngine.from_state_dict`. Pure Python/numpy, no
I/O, deterministic: the same observations give the same alerts, ids included.
A new model version means a new engine (its references and baseline belong to it).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from shared.contracts.drift_alert import Contribution, DriftAlert
from shared.contracts.model_snapshot import ModelSnapshot
from worker.drift import calibration
from worker.drift.activity_detector import MONITOR as ACTIVITY_MONITOR
from worker.drift.activity_detector import ActivityMonitor, ActivityReference
from worker.drift.calibration import StatisticReference
from worker.drift.evaluation import Evaluation
from worker.drift.fast_tier import FastTier
from worker.drift.incidents import LEVELS, AlertContext, IncidentLedger, IncidentMachine, build_alert
from worker.drift.invoice_detector import MONITOR as INVOICE_MONITOR
from worker.drift.invoice_detector import InvoiceMonitor
from worker.drift.segment_detector import MONITOR as SEGMENT_MONITOR
from worker.drift.segment_detector import Assignment, SegmentMonitor
from worker.drift.settings import DriftSettings

STATE_FORMAT = 1
InvoiceRow = tuple[datetime, str, tuple[float, float, float]]


def _log_value(order_value: float) -> float:
    """sign(x)·log1p(|x|), as the snapshot's ``log_order_value`` bins."""
    return math.copysign(math.log1p(abs(order_value)), order_value)


class DriftEngine:
    """Invoice-behaviour, segment-structure and customer-activity monitors, ADWIN fast tier, one incident machine each.

    The machines' transitions go through one :class:`~worker.drift.incidents.IncidentLedger`:
    families in alarm at the same time (or within ``reopen_window_days``) share one incident.

    ``references`` are the invoice monitor's calibrated references; by default they
    are simulated from the snapshot's bins (:func:`~worker.drift.calibration.from_snapshot`).
    Pass :func:`~worker.drift.calibration.from_invoices` of the reference invoices
    when the history is at hand: real chunks give better-calibrated thresholds.
    ``activity`` (keyword, optional) turns the customer-activity monitor on; it
    needs the reference invoices (:func:`~worker.drift.calibration.activity_from_invoices`).
    """

    def __init__(
        self,
        snapshot: ModelSnapshot,
        settings: DriftSettings,
        references: dict[str, StatisticReference] | None = None,
        *,
        activity: ActivityReference | None = None,
    ) -> None:
        self.settings = settings
        self.references = references or calibration.from_snapshot(snapshot, settings)
        start, end = snapshot.training_window
        self.context = AlertContext(
            model_version=snapshot.version,
            reference_period=(start or end, end),
            segment_shares_reference={key: round(value, 4) for key, value in snapshot.reference.segment_shares.items()},
        )
        self.invoices = InvoiceMonitor(self.references, settings)
        self.segments = SegmentMonitor(snapshot.reference.distance_bins, settings)
        self.activity = None if activity is None else ActivityMonitor(activity, settings)
        self.machines = {name: IncidentMachine(name, settings) for name in (INVOICE_MONITOR, SEGMENT_MONITOR)}
        self.machines[ACTIVITY_MONITOR] = IncidentMachine(ACTIVITY_MONITOR, settings, settings.activity_close_after)
        self.ledger = IncidentLedger(timedelta(days=settings.reopen_window_days))
        order = self.references["log_order_value"]
        self.tiers: dict[str, FastTier | None] = {
            INVOICE_MONITOR: FastTier(order.mean, order.scale, settings.adwin_delta, settings.adwin_memory),
            SEGMENT_MONITOR: None,  # needs the segment baseline's distance scale
        }
        self.pending_invoices: list[InvoiceRow] = []
        self.pending_assignments: list[Assignment] = []

    def observe_invoice(
        self,
        event_time: datetime,
        customer_id: str,
        order_value: float,
        lines: int,
        days_since_previous: float | None,
    ) -> None:
        """One purchase invoice: net value (pounds), product lines, days since the customer's previous one."""
        days = math.nan if days_since_previous is None else float(days_since_previous)
        self.pending_invoices.append((event_time, customer_id, (_log_value(order_value), float(lines), days)))

    def observe_assignment(
        self, event_time: datetime, customer_id: str, before: int | None, after: int, distance: float
    ) -> None:
        """One scored customer: segment before (None if new) and after, distance to the new centroid."""
        self.pending_assignments.append((event_time, customer_id, before, after, float(distance)))

    def advance(self, watermark: datetime) -> list[DriftAlert]:
        """Evaluate every observation at or before ``watermark``, in event order; the alerts to publish."""
        invoices, self.pending_invoices = _split(self.pending_invoices, watermark)
        assignments, self.pending_assignments = _split(self.pending_assignments, watermark)
        alerts = []
        for event_time, customer_id, values in invoices:
            self._feed_tier(INVOICE_MONITOR, values[0])
            if self.activity is not None:
                alerts.extend(self._incidents(self.activity.add(event_time, customer_id)))
            alerts.extend(self._incident(self.invoices.add(event_time, customer_id, values)))
        if self.activity is not None:
            alerts.extend(self._incidents(self.activity.close_through(watermark)))
        for row in assignments:
            self._feed_tier(SEGMENT_MONITOR, row[4])
            alerts.extend(self._incident(self.segments.add(row)))
        return sorted(alerts, key=lambda alert: alert.window.end)

    def _feed_tier(self, monitor: str, value: float) -> None:
        tier = self.tiers[monitor]
        if tier is None and self.segments.baseline is not None:
            baseline = self.segments.baseline
            tier = self.tiers[monitor] = FastTier(
                baseline.distance_mean, baseline.distance_std, self.settings.adwin_delta, self.settings.adwin_memory
            )
        if tier is not None and tier.update(value):
            self.machines[monitor].bump()

    def _incidents(self, evaluations: list[Evaluation]) -> list[DriftAlert]:
        return [alert for evaluation in evaluations for alert in self._incident(evaluation)]

    def _incident(self, evaluation: Evaluation | None) -> list[DriftAlert]:
        if evaluation is None:
            return []
        machine = self.machines[evaluation.monitor]
        tier = self.tiers.get(evaluation.monitor)
        extra = (
            [Contribution(name=f"adwin: {evaluation.monitor} signal mean shift (σ)", shift=round(tier.shift, 4))]
            if machine.bump_left and tier is not None
            else []
        )
        family_state = machine.step(evaluation.worst.ratio)
        if family_state is None:
            return []
        worst = evaluation.worst
        state = self.ledger.step(evaluation.monitor, family_state, worst.method, worst.statistic, evaluation.window.end)
        if state is None:
            return []
        severity = max((m.severity for m in self.machines.values() if m.is_open), key=LEVELS.index, default=LEVELS[0])
        return [build_alert(self.ledger, severity, state, evaluation, self.context, extra, self.segments.shares_now())]

    @property
    def open_incident_id(self) -> str | None:
        """The id of this engine's open incident, if one is open."""
        return self.ledger.incident_id(self.context.model_version) if self.ledger.is_open else None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain JSON types (no pickle)."""
        return {
            "format": STATE_FORMAT,
            "model_version": self.context.model_version,
            "references": {name: reference.model_dump(mode="json") for name, reference in self.references.items()},
            "invoices": self.invoices.state_dict(),
            "segments": self.segments.state_dict(),
            "machines": {name: machine.state_dict() for name, machine in self.machines.items()},
            "ledger": self.ledger.state_dict(),
            "activity": None
            if self.activity is None
            else {"reference": self.activity.reference.model_dump(mode="json"), **self.activity.state_dict()},
            "tiers": {name: None if tier is None else tier.state_dict() for name, tier in self.tiers.items()},
            "pending_invoices": [
                [t.isoformat(), c, v[0], v[1], None if math.isnan(v[2]) else v[2]] for t, c, v in self.pending_invoices
            ],
            "pending_assignments": [[t.isoformat(), *rest] for t, *rest in self.pending_assignments],
        }

    @classmethod
    def from_state_dict(cls, snapshot: ModelSnapshot, settings: DriftSettings, state: dict[str, Any]) -> DriftEngine:
        """Resume an engine saved by :meth:`state_dict` for the same model version."""
        if state.get("format") != STATE_FORMAT or state.get("model_version") != snapshot.version:
            raise ValueError(f"drift state is for model v{state.get('model_version')}, not v{snapshot.version}")
        references = {name: StatisticReference.model_validate(raw) for name, raw in state["references"].items()}
        activity = state.get("activity")
        reference = None if activity is None else ActivityReference.model_validate(activity["reference"])
        engine = cls(snapshot, settings, references, activity=reference)
        if engine.activity is not None and activity is not None:
            engine.activity.load_state_dict(activity)
        engine.invoices.load_state_dict(state["invoices"])
        engine.segments.load_state_dict(state["segments"])
        for name, machine_state in state["machines"].items():
            engine.machines[name].load_state_dict(machine_state)
        if "ledger" in state:  # states saved before the ledger start with none open
            engine.ledger.load_state_dict(state["ledger"])
        for name, tier_state in state["tiers"].items():
            engine.tiers[name] = None if tier_state is None else FastTier.from_state_dict(tier_state)
        for moment, customer, value, lines, days in state["pending_invoices"]:
            engine.pending_invoices.append(
                (datetime.fromisoformat(moment), customer, (value, lines, math.nan if days is None else days))
            )
        for moment, *rest in state["pending_assignments"]:
            engine.pending_assignments.append((datetime.fromisoformat(moment), *rest))
        return engine


def _split(rows: list, watermark: datetime) -> tuple[list, list]:
    """(due rows in event order, rows still pending); the sort is stable, so ties keep arrival order."""
    due = sorted((row for row in rows if row[0] <= watermark), key=lambda row: row[0])
    return due, [row for row in rows if row[0] > watermark]
