"""The drift engine the drift monitor drives: observations in, incident alerts out.

Call :meth:`DriftEngine.observe_invoice` for every purchase invoice and
:meth:`DriftEngine.observe_assignment` for every customer scored, in any order;
then :meth:`DriftEngine.advance` with the event-time watermark (no later
observation will be older) to get the alerts to publish.

**Event-time order across families.** ``advance`` evaluates whole event days only,
the days the watermark has passed the end of, one day at a time: that day's invoices
and assignments merged in event order (ties: invoices first, then by customer), then
the customer-activity family's evaluation of the day. Every evaluation reaches the
incident ledger in that order, so the published alerts are the same, in the same
order, whether the monitor reads one observation at a time or a year at once.

The families are on when their references are given: ``invoices`` (default: from the
snapshot's bins), ``activity`` (:func:`~worker.drift.calibration.activity_from_invoices`)
and ``segments`` (:func:`~worker.drift.calibration.segments_from_assignments`).
Persist :meth:`DriftEngine.state_dict`; restore with :meth:`DriftEngine.from_state_dict`.
Pure Python/numpy, no I/O, deterministic. A new model version means a new engine.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from typing import Any

from shared.contracts.drift_alert import Contribution, DriftAlert
from shared.contracts.model_snapshot import ModelSnapshot
from worker.drift import calibration
from worker.drift.activity_detector import MONITOR as ACTIVITY_MONITOR
from worker.drift.activity_detector import ActivityMonitor, ActivityReference
from worker.drift.evaluation import Evaluation
from worker.drift.fast_tier import FastTier
from worker.drift.incidents import AlertContext, IncidentLedger, IncidentMachine, build_alert
from worker.drift.invoice_detector import MONITOR as INVOICE_MONITOR
from worker.drift.invoice_detector import InvoiceMonitor, InvoiceReference
from worker.drift.segment_detector import MONITOR as SEGMENT_MONITOR
from worker.drift.segment_detector import SegmentMonitor, SegmentReference
from worker.drift.settings import DriftSettings

STATE_FORMAT = 2
# (event_time, kind, customer_id, payload): kind 0 = invoice (order value £, lines), 1 = assignment (vector).
Observation = tuple[datetime, int, str, list[float]]
INVOICE, ASSIGNMENT = 0, 1


def _day_end(day: date) -> datetime:
    return datetime.combine(day, time.max)


class DriftEngine:
    """Invoice-behaviour, segment-structure and customer-activity families, one incident ledger."""

    def __init__(
        self,
        snapshot: ModelSnapshot,
        settings: DriftSettings,
        invoices: InvoiceReference | None = None,
        *,
        activity: ActivityReference | None = None,
        segments: SegmentReference | None = None,
    ) -> None:
        self.settings = settings
        self.invoice_reference = invoices or calibration.from_snapshot(snapshot, settings)
        start, end = snapshot.training_window
        names = {str(segment.id): segment.name for segment in snapshot.segments}
        self.context = AlertContext(
            model_version=snapshot.version,
            reference_period=(start or end, end),
            segment_shares_reference=(
                dict(zip(segments.names, (round(share, 4) for share in segments.shares), strict=True))
                if segments is not None
                else {names.get(key, key): round(value, 4) for key, value in snapshot.reference.segment_shares.items()}
            ),
        )
        self.invoices = InvoiceMonitor(self.invoice_reference, settings.invoice_step)
        self.segments = (
            None if segments is None else SegmentMonitor(segments, settings.segment_window, settings.segment_step)
        )
        self.activity = None if activity is None else ActivityMonitor(activity, settings)
        self.machines = {name: IncidentMachine(name, settings) for name in (INVOICE_MONITOR, SEGMENT_MONITOR)}
        self.machines[ACTIVITY_MONITOR] = IncidentMachine(
            ACTIVITY_MONITOR, settings, settings.activity_close_after, settings.activity_open_after
        )
        self.ledger = IncidentLedger(timedelta(days=settings.reopen_window_days))
        order = self.invoice_reference.order_value
        self.tier = FastTier(order.mean, order.sd, settings.adwin_delta, settings.adwin_memory)
        self.pending: list[Observation] = []

    def observe_invoice(
        self, event_time: datetime, customer_id: str, order_value: float, lines: int, days_since_previous: float | None
    ) -> None:
        """One purchase invoice: net value (pounds), product lines (the gap to the previous purchase is not used)."""
        self.pending.append((event_time, INVOICE, customer_id, [float(order_value), float(lines)]))

    def observe_assignment(self, event_time: datetime, customer_id: str, vector: list[float] | None) -> None:
        """One scored customer: its scaled feature vector as of the event (None: a worker that sends none)."""
        if vector is not None and self.segments is not None:
            self.pending.append((event_time, ASSIGNMENT, customer_id, [float(x) for x in vector]))

    def advance(self, watermark: datetime) -> list[DriftAlert]:
        """Evaluate every whole event day that ended at or before ``watermark``, one day at a time; the alerts."""
        last_day = (watermark + timedelta(microseconds=1)).date() - timedelta(days=1)
        due = sorted((row for row in self.pending if row[0].date() <= last_day), key=lambda row: row[:3])
        self.pending = [row for row in self.pending if row[0].date() > last_day]
        alerts: list[DriftAlert] = []
        for row in due:
            alerts.extend(self._observe(row))
        if self.activity is not None:
            alerts.extend(self._incidents(self.activity.close_through(_day_end(last_day))))
        return alerts

    def _observe(self, row: Observation) -> list[DriftAlert]:
        event_time, kind, customer_id, payload = row
        alerts = []
        if self.activity is not None:  # the days before this one are complete: evaluated first
            alerts.extend(self._incidents(self.activity.close_before(event_time.date().toordinal())))
        if kind == ASSIGNMENT:
            assert self.segments is not None  # only kept when the family is on
            return [*alerts, *self._incident(self.segments.add(event_time, customer_id, payload))]
        if self.activity is not None:
            self.activity.add(event_time, customer_id)
        if self.tier.update(math.copysign(math.log1p(abs(payload[0])), payload[0])):  # signed log1p
            self.machines[INVOICE_MONITOR].bump()
        alerts.extend(self._incident(self.invoices.add(event_time, customer_id, payload[0], payload[1])))
        return alerts

    def _incidents(self, evaluations: list[Evaluation]) -> list[DriftAlert]:
        return [alert for evaluation in evaluations for alert in self._incident(evaluation)]

    def _incident(self, evaluation: Evaluation | None) -> list[DriftAlert]:
        if evaluation is None:
            return []
        machine = self.machines[evaluation.monitor]
        bumped = machine.bump_left > 0 and evaluation.monitor == INVOICE_MONITOR
        family_state = machine.step(evaluation.worst.ratio, evaluation.window.end)
        if family_state is None:
            return []
        worst = evaluation.worst
        state = self.ledger.step(evaluation.monitor, family_state, worst.method, worst.statistic, evaluation.window.end)
        if state is None:
            return []
        extra = (
            [Contribution(name="adwin: order value mean shift (σ)", shift=round(self.tier.shift, 4))] if bumped else []
        )
        shares = self.segments.shares_now() if self.segments is not None else {}
        return [build_alert(self.ledger, machine.severity, state, evaluation, self.context, extra, shares)]

    @property
    def open_incident_id(self) -> str | None:
        """The id of this engine's open incident, if one is open."""
        return self.ledger.incident_id(self.context.model_version) if self.ledger.is_open else None

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain JSON types (no pickle)."""
        return {
            "format": STATE_FORMAT,
            "model_version": self.context.model_version,
            "invoice_reference": self.invoice_reference.model_dump(mode="json"),
            "invoices": self.invoices.state_dict(),
            "segments": None
            if self.segments is None
            else {"reference": self.segments.reference.model_dump(mode="json"), **self.segments.state_dict()},
            "machines": {name: machine.state_dict() for name, machine in self.machines.items()},
            "ledger": self.ledger.state_dict(),
            "activity": None
            if self.activity is None
            else {"reference": self.activity.reference.model_dump(mode="json"), **self.activity.state_dict()},
            "tier": self.tier.state_dict(),
            "pending": [[t.isoformat(), kind, customer, payload] for t, kind, customer, payload in self.pending],
        }

    @classmethod
    def from_state_dict(cls, snapshot: ModelSnapshot, settings: DriftSettings, state: dict[str, Any]) -> DriftEngine:
        """Resume an engine saved by :meth:`state_dict` for the same model version and state format."""
        if state.get("model_version") != snapshot.version:
            raise ValueError(f"drift state is for model v{state.get('model_version')}, not v{snapshot.version}")
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"drift state format {state.get('format')} is not {STATE_FORMAT}: start a new engine")
        activity, segments = state.get("activity"), state.get("segments")
        engine = cls(
            snapshot,
            settings,
            InvoiceReference.model_validate(state["invoice_reference"]),
            activity=None if activity is None else ActivityReference.model_validate(activity["reference"]),
            segments=None if segments is None else SegmentReference.model_validate(segments["reference"]),
        )
        if engine.activity is not None and activity is not None:
            engine.activity.load_state_dict(activity)
        if engine.segments is not None and segments is not None:
            engine.segments.load_state_dict(segments)
        engine.invoices.load_state_dict(state["invoices"])
        for name, machine_state in state["machines"].items():
            engine.machines[name].load_state_dict(machine_state)
        engine.ledger.load_state_dict(state["ledger"])
        engine.tier = FastTier.from_state_dict(state["tier"])
        engine.pending = [
            (datetime.fromisoformat(moment), kind, customer, payload)
            for moment, kind, customer, payload in state["pending"]
        ]
        return engine
