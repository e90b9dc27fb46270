"""Drift monitors on the real Online Retail data: the reference statistics, run-length calibration, a price rise,
and the published alert sequence of the real year independent of how much the monitor reads at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.drift import Data, Episode, prepare, price, replay
from shared.contracts.drift_alert import DriftAlert
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.drift import DriftEngine, DriftSettings, calibration
from worker.drift.reference import invoice_statistics
from worker.drift.replays import DayBlocks
from worker.drift.run_length import run_lengths

CUTOFF = datetime(2011, 6, 1)
SETTINGS = DriftSettings()


@pytest.fixture(scope="module")
def data(dataset: Path) -> Data:
    """The harness's preparation: bootstrap model, the year's scored customers, every family calibrated."""
    return prepare(dataset, SETTINGS)


def _engine(data: Data) -> DriftEngine:
    return DriftEngine(data.snapshot, SETTINGS, data.invoices, activity=data.activity, segments=data.segments)


def test_table_matches_the_snapshot_statistics(dataset: Path, data: Data) -> None:
    expected = invoice_statistics(clean(load_history(dataset, CUTOFF)).customers)
    for name in ("log_order_value", "lines_per_invoice"):
        assert np.allclose(np.sort(data.reference[name]), np.sort(expected[name]))


def test_held_out_replays_run_about_the_configured_number_of_days_between_false_openings(data: Data) -> None:
    """Replays the calibration did not see (other seed): mean run length within a factor 2 of the target."""
    long = SETTINGS.model_copy(update={"null_days": 720})
    checks = calibration.invoice_checks(data.invoices, SETTINGS)
    rng = np.random.default_rng(2024)
    null = calibration.null_series(DayBlocks(data.reference), long, rng, 6, SETTINGS.invoice_step, checks)
    lengths, _ = run_lengths(null, data.invoices.thresholds, SETTINGS.open_after)
    mean = 6 * 720 / max(1, len(lengths))
    assert SETTINGS.expected_run_days / 2 <= mean <= SETTINGS.expected_run_days * 2, f"{mean:.0f} days"
    assert data.invoices.source.startswith("expected run 180 event days on 24 day-bootstraps")


def test_a_price_rise_opens_one_incident_within_150_invoices_saying_order_value_moved_in_pounds(data: Data) -> None:
    start = pd.Timestamp(CUTOFF)
    onset = start + pd.Timedelta(days=40)
    stream = DayBlocks(data.reference).replay(80, np.random.default_rng(10), start)
    engine = DriftEngine(data.snapshot, SETTINGS, data.invoices)
    assert [a for a in replay(engine, stream, None) if a.state == "open"] == []

    rng = np.random.default_rng(0)
    raised, _ = price(1.5)((stream, None), data, rng, Episode(onset))
    alerts = [a for a in replay(DriftEngine(data.snapshot, SETTINGS, data.invoices), raised, None) if a.raises()]
    assert len(alerts) == 1
    opened = alerts[0]
    delay = int(((raised["event_time"] >= onset) & (raised["event_time"] <= opened.window.end)).sum())
    assert 0 < delay <= 150, f"{delay} invoices"
    moved = opened.contributions[0]
    assert (moved.name, moved.unit) == ("median order value", "£")
    assert moved.current is not None and moved.reference is not None and moved.current > moved.reference * 1.2
    assert opened.suggested_action.startswith("order values moved")


def _dump(alerts: list[DriftAlert]) -> list[dict]:
    """Alerts as published (no field of an alert depends on the wall clock)."""
    return [alert.model_dump(mode="json") for alert in alerts]


def test_the_real_year_publishes_the_same_alerts_whether_read_one_observation_at_a_time_or_all_at_once(
    data: Data,
) -> None:
    invoices = data.stream.assign(kind=0, order_value=np.sign(data.stream["log_order_value"]) * np.expm1(
        data.stream["log_order_value"].abs()))  # fmt: skip
    rows = pd.concat([invoices, data.assignments.assign(kind=1)]).sort_values(["event_time", "kind"], kind="stable")
    end = rows["event_time"].max() + timedelta(days=1)

    def observe(engine: DriftEngine, row: object) -> None:
        if row.kind == 0:  # type: ignore[attr-defined]
            engine.observe_invoice(row.event_time, row.customer_id, row.order_value, int(row.lines_per_invoice), None)  # type: ignore[attr-defined]
        else:
            engine.observe_assignment(row.event_time, row.customer_id, row.vector)  # type: ignore[attr-defined]

    one_at_a_time, single = [], _engine(data)
    for row in rows.itertuples(index=False):
        observe(single, row)
        one_at_a_time.extend(single.advance(row.event_time))
    one_at_a_time.extend(single.advance(end))

    whole = _engine(data)
    for row in rows.iloc[::-1].itertuples(index=False):  # a year at once, in any order
        observe(whole, row)
    at_once = whole.advance(end)

    assert len(at_once) > 5 and {alert.monitor for alert in at_once} >= {"invoice_behaviour", "segment_structure"}
    assert _dump(one_at_a_time) == _dump(at_once)
    # The story is coherent: an incident opens before it updates or closes, and one is open at a time.
    open_ids: set[str] = set()
    for alert in at_once:
        if alert.state == "open":
            assert not open_ids - {alert.incident_id}
            open_ids = {alert.incident_id}
        else:
            assert open_ids == {alert.incident_id}
            if alert.state == "closed":
                open_ids = set()
    days = (data.stream["event_time"].max() - data.stream["event_time"].min()).days
    assert len(at_once) <= days, "at most one alert per event day"
