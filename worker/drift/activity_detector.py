"""Customer-activity monitor: do the customers who bought regularly keep buying at their rate?

A churn wave (loyal customers stop buying) barely moves per-invoice distributions:
the invoices that remain look like before, there are just fewer of them. This
monitor watches the customers themselves, per completed event day:

* **loyal** customers are those with at least ``activity_min_invoices`` invoices in
  the ``activity_history_days`` before the recent window (a rolling definition: no
  fixed customer list from the snapshot, whose members drift away by themselves);
* **expected** = their invoices in that history × ``activity_window_days`` / history days,
  **observed** = their invoices in the last ``activity_window_days``, each customer's
  capped at their own expected count;
* statistic = log(expected / observed) (with +1 on both sides, so a silent window
  stays finite): larger when some stop. It is above 0 even when everyone keeps their
  pace (the cap takes away a customer's busy windows, not their quiet ones); the null's
  mean carries that.

The cap is what makes it about customers rather than invoices: uncapped, a wholesaler's
busy month makes up for customers who stopped, and the statistic follows the volume of a
few large accounts (calibrated as below but uncapped, it opened a false incident on the
unchanged real summer of 2011 and on 4 of 5 copies with ±3-day time jitter).

The statistic is compared with its null distribution, calibrated by
:func:`~worker.drift.calibration.activity_from_invoices` on the reference invoices:
every customer's own purchase days are rotated by a random number of trading days
(:class:`~worker.drift.replays.CustomerCycles`), so customers keep their rates and how
regularly they buy, but nothing changes over time; the statistic's mean and σ over those
replays give a z-score, and its alert level is set by expected run length
(:mod:`worker.drift.run_length`). A day-bootstrap null (whole days drawn at random)
scatters a regular customer's invoices over random days: far noisier than real
customers, so on real streams the statistic sat well below that null's mean and a loss
of a quarter of the loyal customers could go unseen.
Selecting customers on a busy history makes the next window quieter on average
(regression to the mean); the null contains that effect, so it does not alert.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel

from shared.contracts.drift_alert import Contribution, EventWindow
from worker.drift.evaluation import Check, Evaluation, cohens_d, cohens_h, ranked
from worker.drift.settings import DriftSettings
from worker.drift.statistics import Threshold

MONITOR = "customer_activity"
STATISTIC = "loyal_invoice_rate"


class ActivityReference(BaseModel):
    """Null mean and σ of the statistic, its alert level, and the reference's last days of purchases."""

    mean: float
    scale: float
    threshold: Threshold
    history: dict[str, list[list[int]]]  # customer -> [[day ordinal, invoices], ...], the last days of the reference


def shortfall(observed: float, expected: float) -> float:
    """log((expected + 1) / (observed + 1)): how far loyal customers fall behind their own pace."""
    return math.log((expected + 1.0) / (observed + 1.0))


def _contributions(
    loyal: int, expected: float, observed: int, silent: int, silent_expected: float, settings: DriftSettings
) -> list[Contribution]:
    """Loyal customers' invoices and days between purchases against their own pace, and the share gone silent.

    Effect sizes: the invoice shortfall per loyal customer in Poisson standard deviations
    (Cohen's d), the silent share against the share expected at their pace (Cohen's h).
    """
    window = settings.activity_window_days
    effect = cohens_d(observed / loyal, expected / loyal, math.sqrt(expected / loyal))
    return ranked(
        [
            Contribution(
                name=f"loyal customers' invoices in {window} days",
                unit="invoices",
                reference=round(expected, 1),
                current=float(observed),
                shift=effect,
            ),
            Contribution(
                name="loyal customers' days between purchases",
                unit="days",
                reference=round(window * loyal / expected, 1) if expected else None,
                current=round(window * loyal / observed, 1) if observed else None,
                shift=-effect,
            ),
            Contribution(
                name=f"loyal customers without an invoice in {window} days",
                unit="share",
                reference=round(silent_expected / loyal, 4),
                current=round(silent / loyal, 4),
                shift=cohens_h(silent / loyal, silent_expected / loyal),
            ),
        ]
    )


class ActivityMonitor:
    """Per-customer invoice counts per event day over the history and recent windows; one evaluation per day."""

    def __init__(self, reference: ActivityReference, settings: DriftSettings) -> None:
        self.reference = reference
        self.settings = settings
        self.span = settings.activity_history_days + settings.activity_window_days
        self.counts: dict[str, Counter[int]] = defaultdict(Counter)
        self.day_totals: Counter[int] = Counter()
        for customer, rows in reference.history.items():
            for day, count in rows:
                self.counts[customer][day] += count
                self.day_totals[day] += count
        self.last_closed: int | None = max(self.day_totals, default=None)

    def add(self, event_time: datetime, customer_id: str) -> list[Evaluation]:
        """One purchase invoice, in event order; evaluations of the days it shows to be complete."""
        day = event_time.date().toordinal()
        evaluations = self.close_before(day)
        self.counts[customer_id][day] += 1
        self.day_totals[day] += 1
        return evaluations

    def close_through(self, watermark: datetime) -> list[Evaluation]:
        """Evaluate the days that end at or before ``watermark`` (no later invoice can fall in them)."""
        return self.close_before((watermark + timedelta(microseconds=1)).date().toordinal())

    def close_before(self, day: int) -> list[Evaluation]:
        """Evaluate every day not yet evaluated that lies before ``day``."""
        if self.last_closed is None:
            self.last_closed = day - 1
            return []
        evaluations = []
        while self.last_closed < day - 1:
            self.last_closed += 1
            self._forget_before(self.last_closed - self.span + 1)
            evaluation = self._evaluate(self.last_closed)
            if evaluation is not None:
                evaluations.append(evaluation)
        return evaluations

    def _forget_before(self, day: int) -> None:
        for customer in list(self.counts):
            days = self.counts[customer]
            for old in [d for d in days if d < day]:
                del days[old]
            if not days:
                del self.counts[customer]
        for old in [d for d in self.day_totals if d < day]:
            del self.day_totals[old]

    def _evaluate(self, day: int) -> Evaluation | None:
        """The statistic for the window ending with ``day``; None with too few loyal customers."""
        settings = self.settings
        window_start = day - settings.activity_window_days + 1
        loyal, past_total, recent_total, silent, silent_expected, capped = 0, 0, 0, 0, 0.0, 0.0
        per_day = settings.activity_window_days / settings.activity_history_days
        for days in self.counts.values():
            past = sum(n for d, n in days.items() if d < window_start)
            if past < settings.activity_min_invoices:
                continue
            recent = sum(n for d, n in days.items() if d >= window_start)
            loyal, past_total, recent_total = loyal + 1, past_total + past, recent_total + recent
            capped += min(recent, past * per_day)
            silent += recent == 0
            silent_expected += math.exp(-past * per_day)  # Poisson: no invoice at the customer's own pace
        if loyal < settings.activity_min_customers:
            return None
        expected = past_total * per_day
        z = (shortfall(capped, expected) - self.reference.mean) / self.reference.scale
        threshold = self.reference.threshold
        window = EventWindow(
            start=datetime.combine(date.fromordinal(window_start), time.min),
            end=datetime.combine(date.fromordinal(day), time.max),
            events=sum(n for d, n in self.day_totals.items() if d >= window_start),
            customers=loyal,
        )
        check = Check("z-score", STATISTIC, z, threshold.value, threshold.source)
        return Evaluation(
            MONITOR, check, window, _contributions(loyal, expected, recent_total, silent, silent_expected, settings)
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "counts": {customer: sorted(days.items()) for customer, days in self.counts.items()},
            "day_totals": sorted(self.day_totals.items()),
            "last_closed": self.last_closed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = defaultdict(Counter, {c: Counter(dict(map(tuple, rows))) for c, rows in state["counts"].items()})
        self.day_totals = Counter(dict(map(tuple, state["day_totals"])))
        self.last_closed = state["last_closed"]
