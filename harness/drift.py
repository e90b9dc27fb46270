"""Drift monitors on the real Online Retail data: calibration check, no-drift controls, injected drifts, the year.

Reference = the bootstrap window, invoices before 2011-06-01. Every family is
calibrated on replays of it (seed 0, :mod:`worker.drift.run_length`: day-bootstraps,
customer rotations for the activity family); this harness measures on other data:

* **run lengths**: held-out replays of the reference (seeds 1000+), long ones; the event
  days between openings of each family should be roughly geometric with the configured
  mean (Q-Q quantiles and a Kolmogorov–Smirnov test against the exponential);
* **held-out seeds** (6–10 by default): 180-day customer rotations of the reference after
  the cutoff (:class:`~worker.drift.replays.CustomerCycles`: each customer's own purchase
  days rotated, so customers stay as regular as they were), as controls and with drifts
  injected from day 60 (then reverted at day 120); the segment family's control is a
  day-bootstrap of the reference window's scored customers;
* **real data**: the stream after the cutoff, summer (to 2011-09-01) and the full year;
  controls are the unchanged summer, the summer with every event moved by up to ±3 days
  (time jitter), and the full year (its seasonality is reported apart); drifts are injected
  into the summer from 2011-07-15 on.

The segment family sees customers' feature vectors replayed through the bootstrap
aggregates (what a worker scores). Injected price and basket drifts change invoices,
not those vectors; churn removes the churned customers' scoring too.

Per row: false incidents per 90 event days (incidents a family opened outside the
episode), delay from onset to the first family in alarm in days and invoices,
incidents per episode (by incident id), alerts per incident and per event day.

Run: ``python -m harness.drift [dataset] [--seeds 6 7 8 9 10]`` (a few minutes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.model_snapshot import ModelSnapshot
from shared.features.scaling import signed_log1p
from shared.features.vector import FEATURE_NAMES
from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.model_fit import fit_model
from worker.bootstrap.reference_scorings import reference_scorings
from worker.bootstrap.settings import BootstrapSettings
from worker.bootstrap.snapshot import build_snapshot
from worker.drift import DriftEngine, DriftSettings, calibration
from worker.drift.activity_detector import ActivityReference
from worker.drift.invoice_detector import InvoiceReference
from worker.drift.invoice_table import invoice_table
from worker.drift.replays import CustomerCycles, DayBlocks
from worker.drift.run_length import run_lengths
from worker.drift.segment_detector import SegmentReference, label_frame
from worker.segmentation.naming import name_segments

CUTOFF = datetime(2011, 6, 1)
SUMMER_END = datetime(2011, 9, 1)
REAL_ONSET = datetime(2011, 7, 15)
DATASET = Path(__file__).resolve().parents[2] / "shared/data/online_retail.csv.xz"
STREAM_DAYS = 180
ONSET_DAY, REVERT_DAY = 60, 120
SEEDS = (6, 7, 8, 9, 10)  # calibration uses seed 0; these are held out
RUN_LENGTH_SEEDS = 12  # held-out replays per family for the run-length check
RUN_LENGTH_DAYS = 720
LOYAL_INVOICES = 5  # "loyal": at least this many invoices before the cutoff
COHORT_RATE = 0.2  # new high-value customers' invoices, per base invoice
COHORT_SHIFT = 1.5  # their log order value, in reference σ above the base invoice
FAMILIES = ("invoice_behaviour", "customer_activity", "segment_structure")
SHORT = {"invoice_behaviour": "invoice", "customer_activity": "activity", "segment_structure": "segment"}


@dataclass(frozen=True)
class Data:
    """Everything the scenarios share, loaded once."""

    reference: pd.DataFrame  # invoices before the cutoff
    stream: pd.DataFrame  # invoices after it
    assignments: pd.DataFrame  # scored customers after the cutoff: event_time, customer_id, vector
    snapshot: ModelSnapshot
    sigma: float
    loyal: np.ndarray
    invoices: InvoiceReference
    activity: ActivityReference
    segments: SegmentReference
    reference_labels: pd.DataFrame


Stream = tuple[pd.DataFrame, pd.DataFrame | None]  # invoices, assignments


@dataclass(frozen=True)
class Episode:
    """When an injected drift lasts: from ``onset`` to ``end`` (None: to the end of the stream)."""

    onset: pd.Timestamp
    end: pd.Timestamp | None = None

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        inside = frame["event_time"] >= self.onset
        return inside if self.end is None else inside & (frame["event_time"] < self.end)


Injection = Callable[[Stream, "Data", np.random.Generator, Episode], Stream]


def scored(snapshot: ModelSnapshot, lines: pd.DataFrame) -> pd.DataFrame:
    """Score cleaned customer lines from the data start: each invoice scores its customer, as a worker does.

    The bootstrap's column-wise scorings (:func:`~worker.bootstrap.reference_scorings.reference_scorings`,
    equal to folding the lines one at a time: ``tests/test_reference_scorings.py``); the vector is the
    customer's scaled features as of the invoice (the bootstrap's transform), what a worker sends.
    """
    scorings = reference_scorings(lines, lines["invoice_date"].min().to_pydatetime())
    return calibration.scaled(snapshot, scorings, list(FEATURE_NAMES))[["event_time", "customer_id", "vector"]]


def prepare(dataset: Path, settings: DriftSettings) -> Data:
    """Clean the year, fit the bootstrap model, score every invoice's customer, calibrate every family."""
    cleaned = clean(load_history(dataset))
    table = invoice_table(cleaned.customers)
    before = cleaned.customers[cleaned.customers["invoice_date"] < CUTOFF]
    features = feature_frame(batch_aggregates(before), CUTOFF)
    fit = fit_model(features, BootstrapSettings())
    named = name_segments(features, fit.labels)
    snapshot = build_snapshot(
        version=1, cleaned=clean(load_history(dataset, CUTOFF)), features=features, fit=fit, named=named,
        cutoff=CUTOFF, fingerprint="drift-eval",
    )  # fmt: skip
    reference = table[table["event_time"] < CUTOFF].reset_index(drop=True)
    assignments = scored(snapshot, cleaned.customers)
    reference_assignments = assignments[assignments["event_time"] < CUTOFF].reset_index(drop=True)
    segments = calibration.segments_from_assignments(snapshot, reference_assignments, settings)
    counts = reference["customer_id"].astype(str).value_counts()
    return Data(
        reference=reference,
        stream=table[table["event_time"] >= CUTOFF].reset_index(drop=True),
        assignments=assignments[assignments["event_time"] >= CUTOFF].reset_index(drop=True),
        snapshot=snapshot,
        sigma=float(reference["log_order_value"].std()),
        loyal=counts[counts >= LOYAL_INVOICES].index.to_numpy(),
        invoices=calibration.from_invoices(reference, settings),
        activity=calibration.activity_from_invoices(reference, settings),
        segments=segments,
        reference_labels=label_frame(segments, calibration.segment_reference_rows(reference_assignments, settings)),
    )


# -- injections (each over its episode: the seeds' end at the revert, the real summer's at its end) ------


def price(factor: float) -> Injection:
    def inject(stream: Stream, data: Data, rng: np.random.Generator, episode: Episode) -> Stream:
        invoices, assignments = stream
        invoices = invoices.copy()
        inside = episode.mask(invoices)
        amounts = np.sign(invoices["log_order_value"]) * np.expm1(invoices["log_order_value"].abs())
        invoices.loc[inside, "log_order_value"] = signed_log1p(factor * amounts[inside].to_numpy())
        return invoices, assignments

    return inject


def basket_halving(stream: Stream, data: Data, rng: np.random.Generator, episode: Episode) -> Stream:
    """Half the lines per invoice (at least one), the order value in proportion."""
    invoices, assignments = stream
    invoices = invoices.copy()
    inside = episode.mask(invoices)
    lines = invoices.loc[inside, "lines_per_invoice"]
    halved = np.maximum(1.0, np.round(lines / 2.0))
    amounts = np.sign(invoices.loc[inside, "log_order_value"]) * np.expm1(invoices.loc[inside, "log_order_value"].abs())
    invoices.loc[inside, "log_order_value"] = signed_log1p((amounts * halved / lines).to_numpy())
    invoices.loc[inside, "lines_per_invoice"] = halved
    return invoices, assignments


def churned(loyal: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """The ``share`` of ``loyal`` customers who stop buying (drawn without replacement)."""
    return rng.choice(loyal, size=int(len(loyal) * share), replace=False)


def churn(share: float) -> Injection:
    """``share`` of the loyal customers (≥ 5 invoices before the cutoff) stop buying at the onset."""

    def inject(stream: Stream, data: Data, rng: np.random.Generator, episode: Episode) -> Stream:
        gone = churned(data.loyal, share, rng)
        invoices, assignments = stream
        invoices = invoices[~(episode.mask(invoices) & invoices["customer_id"].isin(gone))]
        if assignments is not None:
            assignments = assignments[~(episode.mask(assignments) & assignments["customer_id"].isin(gone))]
        return invoices.reset_index(drop=True), assignments

    return inject


def cohort(stream: Stream, data: Data, rng: np.random.Generator, episode: Episode) -> Stream:
    """New customers arrive with invoices COHORT_SHIFT σ above the usual value (COHORT_RATE per base invoice)."""
    invoices, assignments = stream
    inside = invoices[episode.mask(invoices)]
    newcomers = inside.sample(frac=COHORT_RATE, random_state=int(rng.integers(1 << 31))).copy()
    newcomers["customer_id"] = [f"new-{i}" for i in range(len(newcomers))]
    newcomers["log_order_value"] += COHORT_SHIFT * data.sigma
    merged = pd.concat([invoices, newcomers]).sort_values("event_time", kind="stable").reset_index(drop=True)
    return merged, assignments


def jitter(stream: Stream, rng: np.random.Generator, end: datetime) -> Stream:
    """Every invoice and scoring moved by up to ±3 days (uniform): a control, nothing about behaviour changes.

    What is moved past ``end`` (the stream's end) is dropped: the days after it would hold
    only the events moved into them, half empty, a drop in activity the stream does not have.
    """

    def moved(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["event_time"] += pd.to_timedelta(rng.uniform(-3.0, 3.0, size=len(frame)), unit="D")
        frame = frame[frame["event_time"] < end]
        return frame.sort_values("event_time", kind="stable").reset_index(drop=True)

    invoices, assignments = stream
    return moved(invoices), None if assignments is None else moved(assignments)


DRIFTS: dict[str, Injection] = {
    "price ×1.5": price(1.5),
    "basket halving": basket_halving,
    "churn 25% of loyal": churn(0.25),
    "churn 40% of loyal": churn(0.40),
    "new high-value cohort": cohort,
}

# -- replay and scoring ----------------------------------------------------------------------------


def replay(engine: DriftEngine, invoices: pd.DataFrame, assignments: pd.DataFrame | None) -> list[DriftAlert]:
    """Feed one event day per batch, advancing the watermark to the day's end, as a caught-up monitor does."""
    alerts: list[DriftAlert] = []
    days = invoices["event_time"].dt.normalize()
    by_day = {} if assignments is None else dict(list(assignments.groupby(assignments["event_time"].dt.normalize())))
    for day in sorted(set(days.unique()) | set(by_day)):
        for row in invoices[days == day].itertuples(index=False):
            value = float(np.sign(row.log_order_value) * np.expm1(abs(row.log_order_value)))
            engine.observe_invoice(row.event_time, row.customer_id, value, int(row.lines_per_invoice), None)
        if day in by_day:
            for row in by_day[day].itertuples(index=False):
                engine.observe_assignment(row.event_time, row.customer_id, row.vector)
        alerts.extend(engine.advance(day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)))
    return alerts


@dataclass(frozen=True)
class Outcome:
    """One replay's incidents against its episode (none for a control)."""

    false_incidents: dict[str, int]
    no_drift_days: float
    event_days: float
    delay_days: float | None
    delay_invoices: int | None
    episode_incidents: int
    alerts: int
    incidents: int
    busiest_day: int


def score(alerts: list[DriftAlert], invoices: pd.DataFrame, start: datetime, end: datetime,
          onset: datetime | None, settle: datetime | None) -> Outcome:  # fmt: skip
    """False incidents (ids first opened outside the episode, by the family that opened them); delay; counts."""
    inside = [bool(onset and settle and onset <= a.window.end < settle) for a in alerts]
    raised = [a for a, flag in zip(alerts, inside, strict=True) if flag and a.raises()]
    false = dict.fromkeys(FAMILIES, 0)
    seen: set[str] = set()
    for alert, flag in zip(alerts, inside, strict=True):
        if alert.state == "open" and alert.incident_id not in seen and not flag:
            false[alert.monitor] += 1
        seen.add(alert.incident_id)
    first = raised[0] if raised else None
    times = invoices["event_time"]
    days = (end - start).total_seconds() / 86_400.0
    per_day = pd.Series([a.window.end.date() for a in alerts]).value_counts()
    return Outcome(
        false_incidents=false,
        no_drift_days=days - ((settle - onset).total_seconds() / 86_400.0 if onset and settle else 0.0),
        event_days=days,
        delay_days=None if first is None or onset is None else (first.window.end - onset).total_seconds() / 86_400.0,
        delay_invoices=None if first is None else int(((times >= onset) & (times <= first.window.end)).sum()),
        episode_incidents=len({a.incident_id for a in raised}),
        alerts=len(alerts),
        incidents=len({a.incident_id for a in alerts}),
        busiest_day=int(per_day.max()) if len(per_day) else 0,
    )


def _row(name: str, outcomes: list[Outcome], drifted: bool) -> dict[str, object]:
    days = sum(o.no_drift_days for o in outcomes)
    delays = [
        (o.delay_days, o.delay_invoices) for o in outcomes if o.delay_days is not None and o.delay_invoices is not None
    ]
    row: dict[str, object] = {"scenario": name}
    for family in FAMILIES:
        row[f"false/90d {SHORT[family]}"] = round(90 * sum(o.false_incidents[family] for o in outcomes) / days, 2)
    row["delay d (max)"] = f"{max(d for d, _ in delays):.1f}" if drifted and delays else "-"
    row["delay d (med)"] = f"{np.median([d for d, _ in delays]):.1f}" if drifted and delays else "-"
    row["delay inv (max)"] = str(max(i for _, i in delays)) if drifted and delays else "-"
    row["missed"] = f"{len(outcomes) - len(delays)}/{len(outcomes)}" if drifted else "-"
    row["incidents/episode"] = "/".join(str(o.episode_incidents) for o in outcomes) if drifted else "-"
    incidents = sum(o.incidents for o in outcomes)
    row["alerts/incident"] = f"{sum(o.alerts for o in outcomes) / incidents:.1f}" if incidents else "-"
    row["alerts/day"] = f"{sum(o.alerts for o in outcomes) / sum(o.event_days for o in outcomes):.2f}"
    row["max alerts one day"] = max(o.busiest_day for o in outcomes)
    return row


def _engine(data: Data, settings: DriftSettings, segments: bool) -> DriftEngine:
    return DriftEngine(
        data.snapshot, settings, data.invoices, activity=data.activity, segments=data.segments if segments else None
    )


def seed_rows(data: Data, settings: DriftSettings, seeds: tuple[int, ...]) -> list[dict[str, object]]:
    """Held-out streams: control (the segment family on a replay of the reference's scorings), drifts.

    The invoices are customer rotations of the reference (each customer's own purchase days,
    rotated), as the activity family's null: a day-bootstrap stream is far less regular than
    real customers, so it would judge that family on the noisier null it no longer assumes.
    """
    start = pd.Timestamp(CUTOFF)
    onset, revert = start + pd.Timedelta(days=ONSET_DAY), start + pd.Timedelta(days=REVERT_DAY)
    settle = revert + pd.Timedelta(days=14)
    invoice_cycles, label_blocks = CustomerCycles(data.reference), DayBlocks(data.reference_labels)
    end = CUTOFF + timedelta(days=STREAM_DAYS)
    rows = []
    for name, inject in {"control (replayed reference)": None, **DRIFTS}.items():
        outcomes = []
        for seed in seeds:
            rng = np.random.default_rng(seed)
            invoices = invoice_cycles.replay(STREAM_DAYS, rng, start)
            engine = _engine(data, settings, segments=inject is None)
            if inject is None:
                labels = label_blocks.replay(STREAM_DAYS, rng, start)
                vectors = np.asarray(data.segments.centroids)[labels["label"].to_numpy()]
                assignments = labels.assign(vector=list(vectors))
                alerts = replay(engine, invoices, assignments)
                outcomes.append(score(alerts, invoices, CUTOFF, end, None, None))
            else:
                invoices, _ = inject((invoices, None), data, rng, Episode(onset, revert))
                alerts = replay(engine, invoices, None)
                outcomes.append(score(alerts, invoices, CUTOFF, end, onset.to_pydatetime(), settle.to_pydatetime()))
        rows.append(_row(name, outcomes, drifted=inject is not None))
    return rows


def real_rows(
    data: Data, settings: DriftSettings, seeds: tuple[int, ...]
) -> tuple[list[dict[str, object]], list[DriftAlert]]:
    """The real stream: summer controls (as is, jittered), the full year, drifts injected from 2011-07-15."""
    summer = (
        data.stream[data.stream["event_time"] < SUMMER_END],
        data.assignments[data.assignments["event_time"] < SUMMER_END],
    )
    rows, year_alerts = [], []
    alerts = replay(_engine(data, settings, True), *summer)
    rows.append(_row("real summer (control)", [score(alerts, summer[0], CUTOFF, SUMMER_END, None, None)], False))
    jittered = []
    for seed in seeds:
        stream = jitter(summer, np.random.default_rng(seed), SUMMER_END)
        alerts = replay(_engine(data, settings, True), *stream)
        jittered.append(score(alerts, stream[0], CUTOFF, SUMMER_END, None, None))
    rows.append(_row("real summer ±3-day jitter", jittered, False))
    year_alerts = replay(_engine(data, settings, True), data.stream, data.assignments)
    year_end = data.stream["event_time"].max().to_pydatetime()
    rows.append(
        _row("real full year (seasonality)", [score(year_alerts, data.stream, CUTOFF, year_end, None, None)], False)
    )
    onset = pd.Timestamp(REAL_ONSET)
    for name, inject in DRIFTS.items():
        outcomes = []
        for seed in seeds if name.startswith("churn") or name.startswith("new") else seeds[:1]:
            invoices, assignments = inject(summer, data, np.random.default_rng(seed), Episode(onset))
            alerts = replay(_engine(data, settings, True), invoices, assignments)
            outcomes.append(score(alerts, invoices, CUTOFF, SUMMER_END, REAL_ONSET, SUMMER_END))
        rows.append(_row(f"real summer, {name}", outcomes, True))
    return rows, year_alerts


def run_length_rows(data: Data, settings: DriftSettings) -> list[dict[str, object]]:
    """Held-out long replays of the reference: run lengths between openings against the geometric law."""
    long = settings.model_copy(update={"null_days": RUN_LENGTH_DAYS})
    rng = np.random.default_rng(1000)
    checks = calibration.invoice_checks(data.invoices, settings)
    invoice = calibration.null_series(
        DayBlocks(data.reference), long, rng, RUN_LENGTH_SEEDS, settings.invoice_step, checks
    )
    checks = calibration.segment_checks(data.segments, settings)
    segment = calibration.null_series(
        DayBlocks(data.reference_labels), long, rng, RUN_LENGTH_SEEDS, settings.segment_step, checks
    )
    raw = calibration.activity_null(data.reference, settings, rng, RUN_LENGTH_SEEDS, RUN_LENGTH_DAYS)
    activity = [calibration.activity_series(values, data.activity.mean, data.activity.scale) for values in raw]
    families = {
        "invoice": (invoice, data.invoices.thresholds, settings.open_after),
        "activity": (activity, [data.activity.threshold.value], settings.activity_open_after),
        "segment": (segment, [data.segments.threshold], settings.open_after),
    }
    rows = []
    expected = settings.expected_run_days
    quantiles = [0.25, 0.5, 0.75, 0.9]
    for name, (series, thresholds, open_after) in families.items():
        lengths, never = run_lengths(series, thresholds, open_after)
        total = RUN_LENGTH_SEEDS * RUN_LENGTH_DAYS
        observed = np.quantile(lengths, quantiles) if lengths else [np.nan] * len(quantiles)
        ks = stats.kstest(lengths, "expon", args=(0, expected)).pvalue if lengths else float("nan")
        rows.append(
            {
                "family": name,
                "null days": total,
                "openings": len(lengths),
                "replays never opened": never,
                "mean run (days)": round(total / max(1, len(lengths))),
                "target": expected,
                "Q-Q 25/50/75/90% observed": "/".join(f"{q:.0f}" for q in observed),
                "geometric": "/".join(f"{-expected * np.log(1 - q):.0f}" for q in quantiles),
                "KS p": round(float(ks), 3),
            }
        )
    return rows


def text_table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    widths = [max(len(column), *(len(str(row[column])) for row in rows)) for column in columns]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _alert_line(alert: DriftAlert) -> str:
    top = ", ".join(
        f"{c.name} {c.reference:g}→{c.current:g} {c.unit} (effect {c.shift:+.2f})"
        if c.reference is not None and c.current is not None
        else f"{c.name} {c.shift:+.2f}"
        for c in alert.contributions[:2]
    )
    active = any(c.monitor == alert.monitor and c.active for c in alert.contributors)
    state: str = "joined" if alert.state == "update" and alert.raises() else alert.state
    state = "left" if alert.state == "update" and not active else state
    return (
        f"{alert.window.end:%Y-%m-%d} {state:<7}{alert.severity:<9}{SHORT.get(alert.monitor, alert.monitor):<9}"
        f"{alert.incident_id:<16}{alert.statistic} {alert.value:.3g}/{alert.threshold:.3g}  [{top}]"
    )


def run(dataset: Path, seeds: tuple[int, ...] = SEEDS) -> dict[str, object]:
    """Every table; prints them and returns them."""
    started = time.perf_counter()
    settings = DriftSettings()
    data = prepare(dataset, settings)
    print(f"prepared and calibrated in {time.perf_counter() - started:.0f} s")
    print(f"\nRun lengths on {RUN_LENGTH_SEEDS} held-out {RUN_LENGTH_DAYS}-day replays of the reference (event days)")
    lengths = run_length_rows(data, settings)
    print(text_table(lengths))
    seeds_table = seed_rows(data, settings, seeds)
    print(
        f"\nHeld-out seeds {', '.join(map(str, seeds))}: {STREAM_DAYS}-day replays, "
        f"episode days {ONSET_DAY}–{REVERT_DAY}"
    )
    print(text_table(seeds_table))
    real, year = real_rows(data, settings, seeds)
    print(
        f"\nReal data: reference < {CUTOFF:%Y-%m-%d}; summer to {SUMMER_END:%Y-%m-%d}; "
        f"drifts from {REAL_ONSET:%Y-%m-%d}"
    )
    print(text_table(real))
    print("\nReal full year, every alert:")
    for alert in year:
        print(_alert_line(alert))
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f} s")
    year_json = [alert.model_dump(mode="json") for alert in year]
    return {"run_lengths": lengths, "seeds": seeds_table, "real": real, "year": year_json, "seconds": elapsed}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DATASET)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="held-out seeds (default: reported)")
    arguments = parser.parse_args()
    run(arguments.dataset, tuple(arguments.seeds))
