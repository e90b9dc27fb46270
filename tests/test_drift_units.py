"""Drift layer without data: incident state machine, fast tier, segment monitor, JSON state, cost."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from shared.contracts.model_snapshot import ModelSnapshot, ReferenceStats, Segment, Transform
from worker.drift import DriftEngine, DriftSettings, calibration
from worker.drift.activity_detector import ActivityReference, shortfall
from worker.drift.fast_tier import FastTier
from worker.drift.incidents import IncidentLedger, IncidentMachine
from worker.drift.invoice_table import STATISTICS
from worker.drift.reference import quantile_bins

START = datetime(2011, 6, 1)
# I.i.d. synthetic windows are smoother than the real reference chunks the 4σ default
# was chosen on (harness/drift.py), so tests that must see one family quiet use 6σ.
QUIET = DriftSettings(threshold_sigmas=6.0)


def snapshot() -> ModelSnapshot:
    """A two-segment model whose invoice references are standard-normal-like bins."""
    rng = np.random.default_rng(0)
    bins = quantile_bins(rng.normal(size=20_000))
    invoice_stats = {
        "log_order_value": bins,
        "lines_per_invoice": quantile_bins(rng.integers(1, 30, size=20_000)),
        "days_since_previous_purchase": quantile_bins(rng.exponential(20.0, size=20_000)),
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
        reference=ReferenceStats(
            invoice_stats=invoice_stats,
            segment_shares={"0": 0.5, "1": 0.5},
            distance_bins=bins,
        ),
        customers=20,
    )


def engine_for(settings: DriftSettings, activity: ActivityReference | None = None) -> DriftEngine:
    """An engine calibrated on 20,000 reference invoices drawn like :func:`feed` draws them."""
    rng = np.random.default_rng(6)
    reference = pd.DataFrame(
        {
            "log_order_value": rng.normal(size=20_000),
            "lines_per_invoice": rng.integers(1, 30, size=20_000).astype(float),
            "days_since_previous_purchase": rng.exponential(20.0, size=20_000),
        }
    )
    return DriftEngine(snapshot(), settings, calibration.from_invoices(reference, settings), activity=activity)


def feed(engine: DriftEngine, values: np.ndarray, segments: np.ndarray | None = None) -> list:
    """One invoice (and one assignment) per minute, the watermark advanced every 500 events."""
    alerts = []
    rng = np.random.default_rng(len(values))
    lines, days = rng.integers(1, 30, size=len(values)), rng.exponential(20.0, size=len(values))
    for i, value in enumerate(values):
        moment = START + timedelta(minutes=i)
        engine.observe_invoice(
            moment, f"c{i % 300}", float(np.sign(value) * np.expm1(abs(value))), int(lines[i]), float(days[i])
        )
        if segments is not None:
            engine.observe_assignment(moment, f"c{i % 300}", int(segments[i]), int(segments[i]), abs(value))
        if i % 500 == 499:
            alerts.extend(engine.advance(moment))
    return alerts


def test_incident_opens_after_consecutive_exceedances_and_closes_with_hysteresis() -> None:
    machine = IncidentMachine("m", DriftSettings(open_after=3, close_after=3, close_ratio=0.7, update_every=100))
    assert [machine.step(r) for r in (1.5, 0.9, 1.5, 1.5)] == [None, None, None, None]  # streak broken at 0.9
    assert machine.step(1.5) == "open"
    # Hovering between the closing level and the threshold keeps the incident open (severity drops to info).
    hovering = [machine.step(r) for r in (0.9, 0.8, 0.75, 0.9, 0.8, 0.75)]
    assert hovering == [None, None, "update", None, None, None] and machine.is_open
    assert [machine.step(r) for r in (0.5, 0.5, 0.5)] == [None, None, "closed"]
    assert not machine.is_open


def test_a_machine_may_close_after_its_own_count_of_quiet_evaluations() -> None:
    settings = DriftSettings(open_after=1, close_after=5, update_every=100, update_min_gap=100)
    default, own = IncidentMachine("a", settings), IncidentMachine("b", settings, close_after=2)
    assert default.step(1.5) == own.step(1.5) == "open"
    assert [own.step(0.1) for _ in range(2)] == [None, "closed"]
    assert [default.step(0.1) for _ in range(5)] == [None, None, None, None, "closed"]
    assert "close_after" not in own.state_dict()


def test_window_psi_is_smoothed_so_one_empty_bin_is_no_spike() -> None:
    """A 100-invoice window missing one reference decile: about 0.3, not over 0.7 (ln of 10% over 0.01%)."""
    reference = calibration.from_invoices(pd.DataFrame({name: np.arange(20_000.0) for name in STATISTICS}), QUIET)
    order = reference["log_order_value"]
    window = np.linspace(2_000.0, 19_999.0, 100)  # nothing in the first decile
    assert 0.2 < order.psi_of(window) < 0.4
    assert order.psi_of(np.linspace(0.0, 19_999.0, 100)) < 0.01


def test_updates_are_rate_limited_unless_severity_moves() -> None:
    settings = DriftSettings(open_after=1, update_every=5, update_min_gap=2, critical_ratio=2.0)
    machine = IncidentMachine("m", settings)
    assert machine.step(1.5) == "open"
    steady = [machine.step(1.5) for _ in range(10)]
    assert steady.count("update") == 2  # heartbeat every 5 evaluations
    assert [machine.step(3.0), machine.step(3.0)] == [None, "update"]  # critical, after the minimum gap
    assert machine.severity == "critical"


def test_fast_tier_alone_never_opens_but_bumps_an_open_incident() -> None:
    machine = IncidentMachine("m", DriftSettings(open_after=1))
    for _ in range(100):
        machine.bump()
        assert machine.step(0.9) is None
    assert not machine.is_open
    machine.bump()
    assert machine.step(1.2) == "open"
    assert machine.severity == "critical"  # warning, bumped by the fast tier


def test_adwin_detection_below_threshold_opens_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 0.2σ step is plain to ADWIN after thousands of invoices yet below the calibrated levels."""
    engine = engine_for(QUIET)
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(size=4000), rng.normal(0.2, 1.0, size=4000)])
    detections = 0
    tier = engine.tiers["invoice_behaviour"]
    assert tier is not None
    original = tier.update

    def counting(value: float) -> bool:
        nonlocal detections
        detected = original(value)
        detections += detected
        return detected

    monkeypatch.setattr(tier, "update", counting)
    alerts = feed(engine, values)
    assert detections >= 1
    assert [alert for alert in alerts if alert.state == "open"] == []


def test_fast_tier_state_rebuilds_the_same_detector() -> None:
    tier = FastTier(mean=0.0, std=1.0, delta=0.002, memory=400)
    rng = np.random.default_rng(2)
    for value in rng.normal(size=1000):
        tier.update(value)
    copy = FastTier.from_state_dict(json.loads(json.dumps(tier.state_dict())))
    later = rng.normal(2.0, 1.0, size=300)
    assert [tier.update(v) for v in later] == [copy.update(v) for v in later]


def test_segment_share_shift_opens_a_segment_incident() -> None:
    settings = QUIET
    engine = engine_for(settings)
    rng = np.random.default_rng(3)
    calm = settings.segment_window * settings.calibration_windows + 2000
    segments = np.concatenate([rng.random(calm) < 0.3, rng.random(2000) < 0.7]).astype(int)
    alerts = feed(engine, rng.normal(size=len(segments)), segments)
    opened = [alert for alert in alerts if alert.state == "open" and alert.monitor == "segment_structure"]
    assert len(opened) == 1
    assert opened[0].window.end >= START + timedelta(minutes=calm)
    assert "first 6 stream windows" in opened[0].threshold_source
    assert opened[0].segment_shares_reference == {"0": 0.5, "1": 0.5}
    assert opened[0].segment_shares_now["1"] > 0.5


def test_state_round_trips_through_json() -> None:
    settings = DriftSettings()
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.normal(size=3000), rng.normal(1.0, 1.0, size=1500)])
    segments = (rng.random(len(values)) < 0.4).astype(int)
    first = engine_for(settings)
    feed(first, values[:2250], segments[:2250])
    first.observe_invoice(START, "late", 10.0, 2, None)  # pending across the restart
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    resumed = DriftEngine.from_state_dict(snapshot(), settings, state)
    assert resumed.state_dict() == first.state_dict()
    tail = [feed(engine, values[2250:], segments[2250:]) for engine in (first, resumed)]
    assert [a.model_dump() for a in tail[0]] == [a.model_dump() for a in tail[1]]
    assert any(alert.state == "open" for alert in tail[0])
    with pytest.raises(ValueError, match="model v3"):
        DriftEngine.from_state_dict(snapshot().model_copy(update={"version": 4}), settings, state)


def test_cost_per_invoice_is_well_under_a_millisecond() -> None:
    engine = engine_for(DriftSettings())
    values = np.random.default_rng(5).normal(size=10_000)
    started = time.perf_counter()
    feed(engine, values, (values > 0).astype(int))
    per_event = (time.perf_counter() - started) / len(values)
    assert per_event < 0.5e-3, f"{per_event * 1e6:.0f} µs per invoice + assignment"


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
    """Feed one event day per batch, the watermark at the day's last microsecond; the activity family's alerts.

    Invoice values are drawn like :func:`engine_for`'s reference, so with ``QUIET`` the
    invoice family stays silent and every incident is the activity family's own.
    """
    alerts, stream = [], stream.reset_index(drop=True)
    rng = np.random.default_rng(len(stream))
    values, lines, days = (
        rng.normal(size=len(stream)),
        rng.integers(1, 30, size=len(stream)),
        rng.exponential(20.0, size=len(stream)),
    )
    for day, batch in stream.groupby(stream["event_time"].dt.normalize()):
        for i, row in zip(batch.index, batch.itertuples(index=False), strict=True):
            value = float(np.sign(values[i]) * np.expm1(abs(values[i])))
            engine.observe_invoice(row.event_time, row.customer_id, value, int(lines[i]), float(days[i]))
        alerts.extend(engine.advance(day + pd.Timedelta(days=1, microseconds=-1)))
    return [alert for alert in alerts if alert.monitor == "customer_activity"]


def test_shortfall_is_zero_at_the_expected_pace_and_grows_when_customers_stop() -> None:
    assert shortfall(observed=40.0, expected=40.0) == 0.0
    assert shortfall(observed=19.0, expected=39.0) == pytest.approx(np.log(2.0))
    assert shortfall(observed=60.0, expected=40.0) < 0.0


def test_steady_customers_open_no_activity_incident() -> None:
    settings = QUIET
    reference = calibration.activity_from_invoices(purchases(START - timedelta(days=180), 180, seed=7), settings)
    assert abs(reference.mean) < 0.2 and reference.scale > 0
    assert reference.threshold.source.startswith("z vs 20 day-bootstraps of the reference")
    alerts = activity_alerts(activity_engine(settings), purchases(START, 120, seed=8))
    assert alerts == []


def test_loyal_customers_who_stop_open_one_activity_incident_within_weeks() -> None:
    """The 100 busiest of 400 customers (about half of all invoices) stop at day 40."""
    settings = QUIET
    engine = activity_engine(settings)
    gone = {f"c{customer}" for customer in range(300, 400)}
    alerts = activity_alerts(engine, purchases(START, 120, seed=8, stop=(40, gone)))
    opened = [alert for alert in alerts if alert.state == "open"]
    assert len(opened) == 1
    assert START + timedelta(days=40) < opened[0].window.end < START + timedelta(days=40 + 21)
    assert opened[0].statistic == "loyal_invoice_rate" and opened[0].value > opened[0].threshold
    assert opened[0].contributions[0].shift < -0.3  # loyal customers' invoices well below their pace


def test_activity_day_is_evaluated_only_once_the_watermark_passes_its_end() -> None:
    settings = QUIET
    engine = activity_engine(settings)
    monitor = engine.activity
    assert monitor is not None
    last = monitor.last_closed
    engine.observe_invoice(START + timedelta(hours=9), "c1", 10.0, 1, 3.0)
    engine.advance(START + timedelta(hours=23))
    assert monitor.last_closed == START.date().toordinal() - 1 == last
    engine.advance(START + timedelta(days=1, microseconds=-1))
    assert monitor.last_closed == START.date().toordinal()


def test_activity_state_round_trips_and_old_states_still_load() -> None:
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
    # Saved before the incident ledger: machines carried their own incident counters.
    older = {key: value for key, value in state.items() if key != "ledger"}
    older["machines"] = {name: {**machine, "incident": 2} for name, machine in state["machines"].items()}
    assert DriftEngine.from_state_dict(snapshot(), settings, older).open_incident_id is None


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


def _shift_alerts(settings: DriftSettings, gap: int) -> list:
    """Order value +3σ for 2,000 invoices, back for ``gap`` invoices, +3σ again for 2,000, then back for 3,000."""
    rng = np.random.default_rng(11)
    calm = rng.normal(size=3000)
    episodes = [rng.normal(3.0, 1.0, size=2000), rng.normal(size=gap), rng.normal(3.0, 1.0, size=2000)]
    return feed(engine_for(settings), np.concatenate([calm, *episodes, rng.normal(size=3000)]))


def test_an_incident_that_closes_and_fires_again_within_the_window_reopens_under_its_id() -> None:
    """One invoice a minute: the incident closes 12 hours before the drift returns (within 7 days, not 6 hours)."""
    alerts = _shift_alerts(QUIET.model_copy(update={"reopen_window_days": 7.0}), gap=1500)
    states = [alert.state for alert in alerts if alert.state != "update"]
    assert states == ["open", "closed", "open", "closed"]
    assert len({alert.incident_id for alert in alerts}) == 1

    separate = _shift_alerts(QUIET.model_copy(update={"reopen_window_days": 0.25}), gap=1500)
    assert [a.state for a in separate if a.state != "update"] == ["open", "closed", "open", "closed"]
    assert len({alert.incident_id for alert in separate}) == 2


def test_a_second_family_joins_the_open_incident_instead_of_opening_its_own() -> None:
    """The busiest customers stop at day 40 while order values rise 3σ: one incident, both families in it."""
    settings = QUIET
    engine = activity_engine(settings)
    gone = {f"c{customer}" for customer in range(300, 400)}
    stream = purchases(START, 100, seed=8, stop=(40, gone)).reset_index(drop=True)
    rng = np.random.default_rng(12)
    shifted = (stream["event_time"] >= START + timedelta(days=40)).to_numpy()
    values = rng.normal(size=len(stream)) + 3.0 * shifted
    alerts = []
    for day, batch in stream.groupby(stream["event_time"].dt.normalize()):
        for i, row in zip(batch.index, batch.itertuples(index=False), strict=True):
            value = float(np.sign(values[i]) * np.expm1(abs(values[i])))
            engine.observe_invoice(row.event_time, row.customer_id, value, int(rng.integers(1, 30)), 20.0)
        alerts.extend(engine.advance(day + pd.Timedelta(days=1, microseconds=-1)))
    assert len({alert.incident_id for alert in alerts}) == 1
    assert [alert.state for alert in alerts].count("open") == 1
    opened = alerts[0]
    assert opened.state == "open" and opened.monitor == "invoice_behaviour"
    joined = next(alert for alert in alerts if alert.monitor == "customer_activity")
    assert joined.state == "update"
    assert [(c.monitor, c.statistic, c.active) for c in joined.contributors] == [
        ("invoice_behaviour", opened.statistic, True),
        ("customer_activity", "loyal_invoice_rate", True),
    ]
    assert joined.contributors[1].joined == joined.window.end
