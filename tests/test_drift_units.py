"""Drift layer without data: incident rules, run-length calibration, the families, event-time order, JSON state."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from functools import cache

import numpy as np
import pandas as pd
import pytest

from shared.contracts.model_snapshot import ModelSnapshot, ReferenceStats, Segment, Transform
from worker.drift import DriftEngine, DriftSettings, calibration
from worker.drift.activity_detector import ActivityReference, shortfall
from worker.drift.fast_tier import FastTier
from worker.drift.incidents import IncidentLedger, IncidentMachine, suggested_action
from worker.drift.invoice_detector import InvoiceMonitor, InvoiceReference, evaluate_series
from worker.drift.reference import quantile_bins
from worker.drift.replays import CustomerCycles
from worker.drift.run_length import NullSeries, calibrate, openings, run_lengths
from worker.drift.segment_detector import SegmentReference

START = datetime(2011, 6, 1)
# The test model has one feature, "x"; the segment family places customers by it.
BASE = DriftSettings(segment_features=("x",))
# A long expected run: tests that must see one family quiet cannot afford a false incident.
QUIET = BASE.model_copy(update={"expected_run_days": 2_000, "null_replays": 8})
PER_DAY = 100  # reference invoices per event day


def snapshot() -> ModelSnapshot:
    """A two-segment model over one feature whose invoice bins are standard-normal-like."""
    rng = np.random.default_rng(0)
    invoice_stats = {
        "log_order_value": quantile_bins(rng.normal(size=20_000)),
        "lines_per_invoice": quantile_bins(rng.integers(1, 30, size=20_000)),
    }
    return ModelSnapshot(
        version=3,
        created_at=START,
        feature_names=["x"],
        transform=Transform(log_features=[], center=[0.0], scale=[1.0]),
        segments=[Segment(id=i, name=f"s{i}", centroid=[float(i)], sum=[0.0], count=10) for i in range(2)],
        k=2,
        training_window=(datetime(2010, 12, 1), START),
        data_fingerprint="test",
        next_segment_id=2,
        reference=ReferenceStats(invoice_stats=invoice_stats, segment_shares={"0": 0.5, "1": 0.5}),
        customers=20,
    )


def reference_invoices(days: int = 150) -> pd.DataFrame:
    """PER_DAY i.i.d. invoices a day before START, drawn like :func:`feed` draws them."""
    rng = np.random.default_rng(6)
    n = days * PER_DAY
    return pd.DataFrame(
        {
            "event_time": [START - timedelta(days=days) + timedelta(minutes=14.4 * i) for i in range(n)],
            "customer_id": [f"c{i % 300}" for i in range(n)],
            "log_order_value": rng.normal(size=n),
            "lines_per_invoice": rng.integers(1, 30, size=n).astype(float),
        }
    )


@cache
def invoice_reference(settings_json: str) -> InvoiceReference:
    return calibration.from_invoices(reference_invoices(), DriftSettings.model_validate_json(settings_json))


@cache
def segment_reference(settings_json: str, share: float = 0.3) -> SegmentReference:
    """The two segments, customers in segment 1 with probability ``share`` in the reference."""
    settings = DriftSettings.model_validate_json(settings_json)
    rng = np.random.default_rng(9)
    n = 150 * 30
    vectors = (rng.random(n) < share).astype(float)[:, None].tolist()
    assignments = pd.DataFrame(
        {
            "event_time": [START - timedelta(days=150) + timedelta(minutes=48 * i) for i in range(n)],
            "customer_id": [f"c{i % 300}" for i in range(n)],
            "vector": vectors,
        }
    )
    return calibration.segments_from_assignments(snapshot(), assignments, settings)


def engine_for(
    settings: DriftSettings, activity: ActivityReference | None = None, segments: bool = False
) -> DriftEngine:
    key = settings.model_dump_json()
    return DriftEngine(
        snapshot(),
        settings,
        invoice_reference(key),
        activity=activity,
        segments=segment_reference(key) if segments else None,
    )


def feed(engine: DriftEngine, values: np.ndarray, segments: np.ndarray | None = None, start: datetime = START) -> list:
    """PER_DAY invoices (and assignments) an event day from ``start``, the watermark advanced at every day's end."""
    alerts = []
    rng = np.random.default_rng(len(values))
    lines = rng.integers(1, 30, size=len(values))
    for i, value in enumerate(values):
        moment = start + timedelta(days=i // PER_DAY, minutes=(i % PER_DAY) * 1440 / PER_DAY)
        engine.observe_invoice(moment, f"c{i % 300}", float(np.sign(value) * np.expm1(abs(value))), int(lines[i]), None)
        if segments is not None:
            engine.observe_assignment(moment, f"c{i % 300}", [float(segments[i])])
        if i % PER_DAY == PER_DAY - 1:
            alerts.extend(engine.advance(moment.replace(hour=23, minute=59, second=59)))
    return alerts


def test_incident_opens_after_consecutive_exceedances_and_closes_with_hysteresis() -> None:
    machine = IncidentMachine("m", DriftSettings(open_after=3, close_after=3, close_ratio=0.7))
    day = [START + timedelta(hours=i) for i in range(20)]
    assert [machine.step(r, day[i]) for i, r in enumerate((1.5, 0.9, 1.5, 1.5))] == [None, None, None, None]
    assert machine.step(1.5, day[4]) == "open"
    # Hovering between the closing level and the threshold sends nothing and keeps the incident open.
    assert [machine.step(r, day[5]) for r in (0.9, 0.8, 0.75, 0.9)] == [None, None, None, None] and machine.is_open
    assert [machine.step(0.5, day[6]) for _ in range(3)] == [None, None, "closed"]
    assert not machine.is_open


def test_updates_only_above_the_threshold_when_severity_rises_or_the_interval_passes() -> None:
    settings = DriftSettings(open_after=1, critical_ratio=2.0, update_interval_days=7, severity_hold_days=1)
    machine = IncidentMachine("m", settings)
    assert (machine.step(1.5, START), machine.severity) == ("open", "warning")
    hours = [machine.step(3.0, START + timedelta(hours=h)) for h in range(1, 24)]
    assert hours == [None] * 23  # critical, but within a day of the last alert
    assert (machine.step(3.0, START + timedelta(days=1)), machine.severity) == ("update", "critical")
    # Flickering back to warning is no news; nor is anything below the threshold, however long.
    flicker = [machine.step(r, START + timedelta(days=1, hours=h)) for h in range(1, 48) for r in (1.5, 3.0)]
    assert flicker == [None] * 94
    assert machine.step(0.9, START + timedelta(days=30)) is None
    assert (machine.step(1.5, START + timedelta(days=30)), machine.severity) == ("update", "warning")


def test_a_machine_may_close_after_its_own_count_of_quiet_evaluations() -> None:
    settings = DriftSettings(open_after=1, close_after=5)
    default, own = IncidentMachine("a", settings), IncidentMachine("b", settings, close_after=2)
    assert default.step(1.5, START) == own.step(1.5, START) == "open"
    assert [own.step(0.1, START) for _ in range(2)] == [None, "closed"]
    assert [default.step(0.1, START) for _ in range(5)] == [None, None, None, None, "closed"]
    assert "close_after" not in own.state_dict()


def test_fast_tier_alone_never_opens_but_bumps_an_open_incident() -> None:
    machine = IncidentMachine("m", DriftSettings(open_after=1))
    for _ in range(100):
        machine.bump()
        assert machine.step(0.9, START) is None
    assert not machine.is_open
    machine.bump()
    assert machine.step(1.2, START) == "open"
    assert machine.severity == "critical"  # warning, bumped by the fast tier


def test_fast_tier_state_rebuilds_the_same_detector() -> None:
    tier = FastTier(mean=0.0, std=1.0, delta=0.002, memory=400)
    rng = np.random.default_rng(2)
    for value in rng.normal(size=1000):
        tier.update(value)
    copy = FastTier.from_state_dict(json.loads(json.dumps(tier.state_dict())))
    later = rng.normal(2.0, 1.0, size=300)
    assert [tier.update(v) for v in later] == [copy.update(v) for v in later]


def test_openings_count_one_per_excursion_and_calibration_hits_the_run_length() -> None:
    assert openings(np.array([2.0, 2.0, 2.0, 2.0, 0.0, 2.0]), 1.0, 2).tolist() == [1]
    rng = np.random.default_rng(3)
    replays = [NullSeries(rng.normal(size=(1000, 2)), np.arange(1000) / 10.0, 100.0) for _ in range(40)]
    result = calibrate(replays, open_after=2, run_days=50.0, quantile=0.99)
    assert result.openings <= 4000 / 50 and result.run_days >= 50
    held_out = [NullSeries(rng.normal(size=(1000, 2)), np.arange(1000) / 10.0, 100.0) for _ in range(40)]
    lengths, _ = run_lengths(held_out, result.thresholds(), open_after=2)
    assert 30 < 4000 / len(lengths) < 90  # about the configured 50 event days between openings


def test_the_vectorised_null_computes_what_the_monitor_computes() -> None:
    """The calibration's checks (cumulative sums) equal the streaming monitor's (one window at a time)."""
    reference = invoice_reference(BASE.model_dump_json())
    rng = np.random.default_rng(4)
    logged, lines = rng.normal(0.3, 1.2, size=600), rng.integers(1, 40, size=600).astype(float)
    series = evaluate_series(reference, logged, lines, step=5)
    monitor = InvoiceMonitor(reference, step=5)
    amounts = np.sign(logged) * np.expm1(np.abs(logged))
    for i in range(600):
        evaluation = monitor.add(START + timedelta(minutes=i), "c", float(amounts[i]), float(lines[i]))
        if evaluation is not None:
            row = series[(i + 1) // 5 - 1]
            thresholds = np.asarray(reference.thresholds)[: len(row)]
            assert evaluation.worst.ratio == pytest.approx(float(np.max(row / thresholds)), rel=1e-9)


def test_stationary_invoices_open_nothing_and_a_price_rise_opens_one_incident_saying_what_moved() -> None:
    rng = np.random.default_rng(5)
    assert feed(engine_for(QUIET), rng.normal(size=6_000)) == []
    values = np.concatenate([rng.normal(size=3_000), rng.normal(size=3_000) + np.log(1.5)])
    alerts = feed(engine_for(QUIET), values)
    opened = [alert for alert in alerts if alert.state == "open"]
    assert len(opened) == 1 and len({alert.incident_id for alert in alerts}) == 1
    delay = (opened[0].window.end - (START + timedelta(days=30))).total_seconds() / 86_400 * PER_DAY
    assert 0 < delay <= 150, f"{delay:.0f} invoices"
    first = opened[0].contributions[0]
    assert first.name == "median order value" and first.unit == "£" and first.shift > 0
    assert first.current is not None and first.reference is not None and first.current > first.reference
    assert opened[0].suggested_action.startswith("order values moved")
    assert "expected run 2000 event days" in opened[0].threshold_source


def test_adwin_detection_below_threshold_opens_nothing() -> None:
    """A 0.1σ step is plain to a sensitive ADWIN after thousands of invoices yet below the calibrated levels."""
    engine = engine_for(QUIET.model_copy(update={"adwin_delta": 0.2, "adwin_memory": 20_000}))
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(size=4000), rng.normal(0.1, 1.0, size=4000)])
    alerts = feed(engine, values)
    assert engine.tier.shift > 0  # ADWIN saw the step (and restarted on the new values)
    assert [alert for alert in alerts if alert.state == "open"] == []


def test_segment_share_shift_opens_a_segment_incident_naming_the_segment() -> None:
    engine = engine_for(QUIET, segments=True)
    rng = np.random.default_rng(3)
    segments = np.concatenate([rng.random(4_000) < 0.3, rng.random(3_000) < 0.7]).astype(int)
    alerts = [a for a in feed(engine, rng.normal(size=len(segments)), segments) if a.monitor == "segment_structure"]
    opened = [alert for alert in alerts if alert.state == "open"]
    assert len(opened) == 1
    assert opened[0].window.end >= START + timedelta(days=40)
    assert opened[0].segment_shares_reference == pytest.approx({"s0": 0.7, "s1": 0.3}, abs=0.02)
    assert opened[0].segment_shares_now["s1"] > 0.4  # 0.3 in the reference; the window straddles the change
    moved = opened[0].contributions[0]
    assert moved.name in ("share of segment 's1'", "share of segment 's0'") and moved.unit == "share"
    assert "review whether the segments still describe them" in opened[0].suggested_action


def test_alerts_are_the_same_whether_the_engine_reads_one_observation_at_a_time_or_everything_at_once() -> None:
    rng = np.random.default_rng(8)
    n = 5_000
    values = np.concatenate([rng.normal(size=n // 2), rng.normal(size=n // 2) + 1.0])
    segments = np.concatenate([rng.random(n // 2) < 0.3, rng.random(n // 2) < 0.8]).astype(int)
    settings = BASE
    observations = []
    for i in range(n):
        moment = START + timedelta(days=i // 100, minutes=(i % 100) * 14)
        observations.append((moment, f"c{i % 300}", float(np.sign(values[i]) * np.expm1(abs(values[i]))), segments[i]))
    single, whole = engine_for(settings, segments=True), engine_for(settings, segments=True)
    one_by_one = []
    for moment, customer, value, segment in observations:
        single.observe_assignment(moment, customer, [float(segment)])  # arrival order differs from event order
        single.observe_invoice(moment, customer, value, 3, None)
        one_by_one.extend(single.advance(moment))
    one_by_one.extend(single.advance(START + timedelta(days=60)))
    for moment, customer, value, segment in reversed(observations):
        whole.observe_invoice(moment, customer, value, 3, None)
        whole.observe_assignment(moment, customer, [float(segment)])
    at_once = whole.advance(START + timedelta(days=60))
    assert {alert.monitor for alert in at_once} == {"invoice_behaviour", "segment_structure"}
    assert [alert.model_dump() for alert in one_by_one] == [alert.model_dump() for alert in at_once]


def test_state_round_trips_through_json() -> None:
    settings = BASE
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(size=3000), rng.normal(1.0, 1.0, size=1500)])
    segments = (rng.random(len(values)) < 0.4).astype(int)
    first = engine_for(settings, segments=True)
    feed(first, values[:2300], segments[:2300])
    first.observe_invoice(START + timedelta(days=23), "late", 10.0, 2, None)  # pending across the restart
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    resumed = DriftEngine.from_state_dict(snapshot(), settings, state)
    assert resumed.state_dict() == first.state_dict()
    later = START + timedelta(days=23)
    tail = [feed(engine, values[2300:], segments[2300:], later) for engine in (first, resumed)]
    assert [a.model_dump() for a in tail[0]] == [a.model_dump() for a in tail[1]]
    assert any(alert.raises() for alert in tail[0]), [(a.state, a.monitor) for a in tail[0]]
    with pytest.raises(ValueError, match="model v3"):
        DriftEngine.from_state_dict(snapshot().model_copy(update={"version": 4}), settings, state)
    with pytest.raises(ValueError, match="format"):
        DriftEngine.from_state_dict(snapshot(), settings, {**state, "format": 1})


def test_cost_per_invoice_is_well_under_a_millisecond() -> None:
    engine = engine_for(BASE, segments=True)
    values = np.random.default_rng(5).normal(size=10_000)
    started = time.perf_counter()
    feed(engine, values, (values > 0).astype(int))
    per_event = (time.perf_counter() - started) / len(values)
    assert per_event < 0.5e-3, f"{per_event * 1e6:.0f} µs per invoice + assignment"


def test_the_action_follows_what_moved() -> None:
    from shared.contracts.drift_alert import Contribution

    def action(name: str) -> str:
        return suggested_action([Contribution(name=name, shift=1.0)])

    assert action("median order value").startswith("order values moved")
    assert action("lines per invoice (mean)").startswith("basket size moved")
    assert action("loyal customers' invoices in 14 days").startswith("customers who bought regularly")
    assert action("share of segment 'returners'").startswith("customers' behaviour now spreads")


def purchases(start: datetime, days: int, seed: int, stop: tuple[int, set[str]] | None = None) -> pd.DataFrame:
    """Invoices of 400 customers buying at steady Poisson rates (0.02-0.5 a day) for ``days`` from ``start``.

    ``stop`` = (day, customers): those customers buy nothing from that day on.
    """
    rng = np.random.default_rng(seed)
    rates = np.geomspace(0.02, 0.5, 400)
    rows = []
    for day in range(days):
        moment = start + timedelta(days=day, hours=10)
        for customer, n in enumerate(rng.poisson(rates)):
            if stop is None or day < stop[0] or f"c{customer}" not in stop[1]:
                rows += [(moment + timedelta(minutes=i), f"c{customer}") for i in range(n)]
    return pd.DataFrame(rows, columns=["event_time", "customer_id"])


def activity_engine(settings: DriftSettings) -> DriftEngine:
    """An engine whose activity monitor is calibrated on 180 reference days before START."""
    reference = purchases(START - timedelta(days=180), 180, seed=7)
    return engine_for(settings, activity=calibration.activity_from_invoices(reference, settings))


def activity_alerts(engine: DriftEngine, stream: pd.DataFrame) -> list:
    """Feed one event day per batch, the watermark at the day's last microsecond; the activity family's alerts."""
    alerts, stream = [], stream.reset_index(drop=True)
    rng = np.random.default_rng(len(stream))
    values, lines = rng.normal(size=len(stream)), rng.integers(1, 30, size=len(stream))
    for day, batch in stream.groupby(stream["event_time"].dt.normalize()):
        for i, row in zip(batch.index, batch.itertuples(index=False), strict=True):
            value = float(np.sign(values[i]) * np.expm1(abs(values[i])))
            engine.observe_invoice(row.event_time, row.customer_id, value, int(lines[i]), None)
        alerts.extend(engine.advance(day + pd.Timedelta(days=1, microseconds=-1)))
    return [alert for alert in alerts if alert.monitor == "customer_activity"]


def test_customer_rotations_keep_each_customers_invoices_and_gaps_between_trading_days() -> None:
    """Every cycle of the reference's length holds each customer's invoices, their days rotated as one."""
    reference = purchases(START - timedelta(days=60), 60, seed=3)
    cycles = CustomerCycles(reference)
    period = cycles.period
    replay = cycles.replay(3 * period, np.random.default_rng(1), pd.Timestamp(START))
    first = period - int(np.random.default_rng(1).integers(0, period))  # where the second cycle begins (first draw)
    day = ((replay["event_time"].dt.normalize() - pd.Timestamp(START)) / pd.Timedelta(days=1)).astype(int)
    assert (
        (replay["event_time"] - replay["event_time"].dt.normalize())
        .isin(set(reference["event_time"] - reference["event_time"].dt.normalize()))
        .all()
    )
    for customer, own in reference.groupby("customer_id"):
        own_days = sorted(np.searchsorted(cycles.day_values, own["event_time"].dt.normalize().to_numpy()))
        gaps = sorted(np.diff([*own_days, own_days[0] + period]))
        whole = day[(replay["customer_id"] == customer) & (day >= first) & (day < first + period)].sort_values()
        assert len(whole) == len(own)
        assert sorted(np.diff([*whole.tolist(), whole.iloc[0] + period])) == gaps
    counts = cycles.counts(3 * period, np.random.default_rng(1))  # the same draw, as a count matrix
    assert (
        counts.sum() == len(replay)
        and (counts.sum(axis=0) == day.value_counts().reindex(range(3 * period), fill_value=0)).all()
    )


def test_shortfall_is_zero_at_the_expected_pace_and_grows_when_customers_stop() -> None:
    assert shortfall(observed=40.0, expected=40.0) == 0.0
    assert shortfall(observed=19.0, expected=39.0) == pytest.approx(np.log(2.0))
    assert shortfall(observed=60.0, expected=40.0) < 0.0


def test_steady_customers_open_no_activity_incident() -> None:
    settings = QUIET
    reference = calibration.activity_from_invoices(purchases(START - timedelta(days=180), 180, seed=7), settings)
    # Above 0 at a steady pace: capping each customer at their expected count takes away their
    # busy windows, not their quiet ones; the null carries that.
    assert 0 < reference.mean < 0.5 and reference.scale > 0
    assert reference.threshold.source.startswith("expected run 2000 event days on 8 customer rotations")
    assert activity_alerts(activity_engine(settings), purchases(START, 120, seed=8)) == []


def test_loyal_customers_who_stop_open_one_activity_incident_within_weeks() -> None:
    """The 100 busiest of 400 customers (about half of all invoices) stop at day 40."""
    engine = activity_engine(QUIET)
    gone = {f"c{customer}" for customer in range(300, 400)}
    alerts = activity_alerts(engine, purchases(START, 120, seed=8, stop=(40, gone)))
    opened = [alert for alert in alerts if alert.state == "open"]
    assert len(opened) == 1
    assert START + timedelta(days=40) < opened[0].window.end < START + timedelta(days=40 + 21)
    assert opened[0].statistic == "loyal_invoice_rate" and opened[0].value > opened[0].threshold
    units = {c.name: (c.unit, c.reference, c.current) for c in opened[0].contributions}
    unit, reference, current = units["loyal customers' days between purchases"]
    assert unit == "days" and reference is not None and current is not None and current > reference
    assert opened[0].suggested_action.startswith("customers who bought regularly")


def test_activity_day_is_evaluated_only_once_the_watermark_passes_its_end() -> None:
    engine = activity_engine(QUIET)
    monitor = engine.activity
    assert monitor is not None
    last = monitor.last_closed
    engine.observe_invoice(START + timedelta(hours=9), "c1", 10.0, 1, 3.0)
    engine.advance(START + timedelta(hours=23))
    assert monitor.last_closed == START.date().toordinal() - 1 == last
    engine.advance(START + timedelta(days=1, microseconds=-1))
    assert monitor.last_closed == START.date().toordinal()


def test_activity_state_round_trips() -> None:
    settings = QUIET
    gone = {f"c{customer}" for customer in range(300, 400)}
    stream = purchases(START, 90, seed=9, stop=(30, gone))
    first = activity_engine(settings)
    head, tail = (
        stream[stream["event_time"] < START + timedelta(days=35)],
        stream[stream["event_time"] >= START + timedelta(days=35)],
    )
    activity_alerts(first, head)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    resumed = DriftEngine.from_state_dict(snapshot(), settings, state)
    assert resumed.state_dict() == first.state_dict()
    assert [a.model_dump() for a in activity_alerts(first, tail)] == [
        a.model_dump() for a in activity_alerts(resumed, tail)
    ]
    without = {key: value for key, value in state.items() if key != "activity"}
    assert DriftEngine.from_state_dict(snapshot(), settings, without).activity is None


def test_ledger_joins_families_into_one_incident_and_closes_with_the_last() -> None:
    ledger = IncidentLedger(timedelta(days=7))
    day = START.replace

    assert ledger.step("invoice_behaviour", "open", "psi", "log_order_value", day(day=1)) == "open"
    assert ledger.step("customer_activity", "open", "z-score", "loyal_invoice_rate", day(day=3)) == "update"
    assert ledger.number == 1 and [(c.monitor, c.active) for c in ledger.contributors] == [
        ("invoice_behaviour", True),
        ("customer_activity", True),
    ]
    assert ledger.step("customer_activity", "update", "z-score", "loyal_invoice_rate", day(day=4)) == "update"
    assert ledger.step("invoice_behaviour", "closed", "psi", "log_order_value", day(day=5)) == "update"
    assert ledger.is_open and [c.active for c in ledger.contributors] == [False, True]
    assert ledger.step("customer_activity", "closed", "z-score", "loyal_invoice_rate", day(day=9)) == "closed"
    assert not ledger.is_open and ledger.closed_at == day(day=9)
    # A family of no open incident (an engine state from before the ledger) sends nothing.
    assert ledger.step("segment_structure", "update", "psi", "segment_shares", day(day=10)) is None


def test_ledger_reopens_within_the_window_and_opens_a_new_incident_after_it() -> None:
    ledger = IncidentLedger(timedelta(days=7))
    ledger.step("invoice_behaviour", "open", "psi", "log_order_value", START)
    ledger.step("invoice_behaviour", "closed", "psi", "log_order_value", START + timedelta(days=10))
    reopened = ledger.step("customer_activity", "open", "z-score", "loyal_invoice_rate", START + timedelta(days=17))
    assert reopened == "open" and ledger.number == 1
    assert [(c.monitor, c.active) for c in ledger.contributors] == [
        ("invoice_behaviour", False),
        ("customer_activity", True),
    ]
    ledger.step("customer_activity", "closed", "z-score", "loyal_invoice_rate", START + timedelta(days=20))
    later = START + timedelta(days=27, seconds=1)
    assert ledger.step("invoice_behaviour", "open", "psi", "log_order_value", later) == "open"
    assert ledger.number == 2 and [c.monitor for c in ledger.contributors] == ["invoice_behaviour"]
    restored = IncidentLedger(timedelta(days=7))
    restored.load_state_dict(json.loads(json.dumps(ledger.state_dict())))
    assert restored == ledger


def test_a_second_family_joins_the_open_incident_instead_of_opening_its_own() -> None:
    """The busiest customers stop at day 40 while order values rise 3σ: one incident, both families in it."""
    engine = activity_engine(QUIET)
    gone = {f"c{customer}" for customer in range(300, 400)}
    stream = purchases(START, 100, seed=8, stop=(40, gone)).reset_index(drop=True)
    rng = np.random.default_rng(12)
    shifted = (stream["event_time"] >= START + timedelta(days=40)).to_numpy()
    values = rng.normal(size=len(stream)) + 3.0 * shifted
    alerts = []
    for day, batch in stream.groupby(stream["event_time"].dt.normalize()):
        for i, row in zip(batch.index, batch.itertuples(index=False), strict=True):
            value = float(np.sign(values[i]) * np.expm1(abs(values[i])))
            engine.observe_invoice(row.event_time, row.customer_id, value, int(rng.integers(1, 30)), None)
        alerts.extend(engine.advance(day + pd.Timedelta(days=1, microseconds=-1)))
    assert len({alert.incident_id for alert in alerts}) == 1
    assert [alert.state for alert in alerts].count("open") == 1
    opened = alerts[0]
    assert opened.state == "open" and opened.monitor == "invoice_behaviour"
    joined = next(alert for alert in alerts if alert.monitor == "customer_activity")
    assert joined.state == "update" and joined.raises()
    assert [(c.monitor, c.statistic, c.active) for c in joined.contributors] == [
        ("invoice_behaviour", opened.statistic, True),
        ("customer_activity", "loyal_invoice_rate", True),
    ]
