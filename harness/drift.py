"""Drift monitors on the real Online Retail data: injected drifts with known onsets, no-drift controls, the real year.

Reference = invoices before 2011-06-01 (the bootstrap window). Scenario streams
are **day-block bootstraps of the reference**: 180 synthetic days, each a whole
reference day drawn with replacement (its invoices keep their time of day, value,
lines, customer and gap). Stationary by construction, yet they keep the data's
clumpiness within a day (wholesalers' multi-invoice days). That is the no-drift
control; permuting the June–December stream instead would compare the autumn
season with the spring reference, a real shift, not a control. Drifts are injected
into the same kind of stream from day 60 to day 120 (then reverted), so delay,
misses and incidents per episode are measured against a known onset.

The scenarios exercise the invoice-behaviour and customer-activity families (they
change invoices, not a model): false incidents (new incident ids opened outside the
episode) are counted per family, re-opens of an incident id inside and outside the episode
are shown apart, delay from the first family in alarm, incidents per episode by
incident id (families share an incident). The segment family and the
fast tier run on the real year, where the assignments come from replaying the stream
through the bootstrap model.

Run: ``python -m harness.drift [dataset] [--seeds 100 101 ...]`` (a few minutes).
Tune on other seeds than the reported ones (the defaults were chosen on 1–5 and 100–115).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.invoice import InvoiceLine
from shared.contracts.model_snapshot import ModelSnapshot
from shared.features.aggregates import CustomerAggregates, Membership, apply_line
from shared.features.scaling import transform_vector
from shared.features.vector import compute_features
from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.model_fit import fit_model
from worker.bootstrap.settings import BootstrapSettings
from worker.bootstrap.snapshot import build_snapshot, segment_ids
from worker.drift import DriftEngine, DriftSettings, calibration
from worker.drift.activity_detector import ActivityReference
from worker.drift.calibration import StatisticReference
from worker.drift.invoice_table import invoice_table
from worker.segmentation.naming import name_segments

CUTOFF = datetime(2011, 6, 1)
DATASET = Path(__file__).resolve().parents[2] / "shared/data/online_retail.csv.xz"
STREAM_DAYS = 180
ONSET_DAY, REVERT_DAY = 60, 120
SEEDS = (6, 7, 8, 9, 10)  # the defaults were tuned on seeds 1–5 and 100–115; these are held out
CHURN_SHARE = 0.5  # of loyal customers (top decile by reference invoices) who stop buying
COHORT_RATE = 0.2  # new high-value customers' invoices, per base invoice
COHORT_SHIFT = 1.5  # their log order value, in reference σ above the base invoice
FAMILIES = ("invoice_behaviour", "customer_activity")
SHORT = {"invoice_behaviour": "invoice", "customer_activity": "activity"}


@dataclass(frozen=True)
class Data:
    """Everything the scenarios share, loaded once."""

    reference: pd.DataFrame
    stream: pd.DataFrame
    customers: pd.DataFrame
    snapshot: ModelSnapshot
    segments: dict[str, int]
    sigma: float


Injection = Callable[[pd.DataFrame, Data, np.random.Generator], pd.DataFrame]


def prepare(dataset: Path) -> Data:
    """Clean the year, fit the bootstrap model on the reference window, build the invoice tables."""
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
    return Data(
        reference=reference,
        stream=table[table["event_time"] >= CUTOFF].reset_index(drop=True),
        customers=cleaned.customers,
        snapshot=snapshot,
        segments=dict(zip(features.index, segment_ids(fit, named).tolist(), strict=True)),
        sigma=float(reference["log_order_value"].std()),
    )


def day_bootstrap(reference: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """STREAM_DAYS synthetic days from CUTOFF, each a reference day drawn with replacement."""
    day = reference["event_time"].dt.normalize()
    days = day.unique()
    picks = rng.choice(len(days), size=STREAM_DAYS)
    by_day = {value: frame for value, frame in reference.groupby(day)}
    parts = []
    for offset, pick in enumerate(picks):
        part = by_day[days[pick]].copy()
        part["event_time"] = part["event_time"] - days[pick] + pd.Timestamp(CUTOFF) + pd.Timedelta(days=offset)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _episode(stream: pd.DataFrame) -> pd.Series:
    start = pd.Timestamp(CUTOFF) + pd.Timedelta(days=ONSET_DAY)
    end = pd.Timestamp(CUTOFF) + pd.Timedelta(days=REVERT_DAY)
    return (stream["event_time"] >= start) & (stream["event_time"] < end)


def shifted(size: float, ramp_days: int = 0) -> Injection:
    """Log order value + size·σ during the episode (reached linearly over ``ramp_days``)."""

    def inject(stream: pd.DataFrame, data: Data, rng: np.random.Generator) -> pd.DataFrame:
        stream = stream.copy()
        inside = _episode(stream)
        if not ramp_days:
            stream.loc[inside, "log_order_value"] += size * data.sigma
            return stream
        elapsed = (stream["event_time"] - pd.Timestamp(CUTOFF)).dt.total_seconds() / 86_400.0 - ONSET_DAY
        stream.loc[inside, "log_order_value"] += (size * data.sigma * np.clip(elapsed / ramp_days, 0.0, 1.0))[inside]
        return stream

    return inject


def churn(stream: pd.DataFrame, data: Data, rng: np.random.Generator) -> pd.DataFrame:
    """CHURN_SHARE of loyal customers (top decile by reference invoices) stop buying during the episode."""
    counts = data.reference["customer_id"].astype(str).value_counts()
    loyal = counts[counts >= counts.quantile(0.9)].index.to_numpy()
    gone = rng.choice(loyal, size=int(len(loyal) * CHURN_SHARE), replace=False)
    return stream[~(_episode(stream) & stream["customer_id"].isin(gone))].reset_index(drop=True)


def cohort(stream: pd.DataFrame, data: Data, rng: np.random.Generator) -> pd.DataFrame:
    """New customers arrive during the episode with first purchases COHORT_SHIFT σ above the usual value."""
    inside = stream[_episode(stream)]
    newcomers = inside.sample(frac=COHORT_RATE, random_state=int(rng.integers(1 << 31))).copy()
    newcomers["customer_id"] = [f"new-{i}" for i in range(len(newcomers))]
    newcomers["log_order_value"] += COHORT_SHIFT * data.sigma
    newcomers["days_since_previous_purchase"] = np.nan
    return pd.concat([stream, newcomers]).sort_values("event_time", kind="stable").reset_index(drop=True)


SCENARIOS: dict[str, Injection | None] = {
    "control (no drift)": None,
    "abrupt 0.5σ order value": shifted(0.5),
    "abrupt 1σ order value": shifted(1.0),
    "30-day ramp to 1σ": shifted(1.0, ramp_days=30),
    "churn wave (loyal)": churn,
    "new high-value cohort": cohort,
}


def replay(engine: DriftEngine, invoices: pd.DataFrame, assignments: pd.DataFrame | None = None) -> list[DriftAlert]:
    """Feed one event-time day per batch, advancing the watermark to the day's end, as the worker would."""
    alerts: list[DriftAlert] = []
    days = invoices["event_time"].dt.normalize()
    assignment_days = None if assignments is None else assignments["event_time"].dt.normalize()
    for day in days.unique():
        batch = invoices[days == day]
        for row in batch.itertuples(index=False):
            gap = row.days_since_previous_purchase
            value = float(np.expm1(row.log_order_value))
            engine.observe_invoice(
                row.event_time, row.customer_id, value, int(row.lines_per_invoice), None if np.isnan(gap) else gap
            )
        if assignments is not None:
            for row in assignments[assignment_days == day].itertuples(index=False):
                engine.observe_assignment(row.event_time, row.customer_id, row.before, row.after, row.distance)
        alerts.extend(engine.advance(day + pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)))
    return alerts


@dataclass(frozen=True)
class Outcome:
    """One replay's incidents of the scenario families, against the episode."""

    false_incidents: dict[str, int]
    no_drift_days: float
    episode_incidents: int
    episode_families: tuple[str, ...]
    delay_invoices: int | None
    delay_days: float | None
    closed_after_revert: bool
    reopens: tuple[int, int]  # inside the episode (and its settling days), outside it


def score(alerts: list[DriftAlert], stream: pd.DataFrame, drifted: bool) -> Outcome:
    """False incidents outside the episode per family; delay and incidents (by id) inside it (plus 14 days to settle).

    An incident is its id: a false incident is an id first opened outside the episode;
    a re-open of an id (drift again within ``reopen_window_days`` of its close) is no new
    incident, and is counted apart, inside and outside the episode, so none is hidden.
    Inside the episode the incidents are the distinct ids of the alerts by which a
    family went into alarm (opened, re-opened or joined).
    """
    onset = CUTOFF + timedelta(days=ONSET_DAY)
    settle = CUTOFF + timedelta(days=REVERT_DAY + 14)
    ordered = sorted((alert for alert in alerts if alert.monitor in FAMILIES), key=lambda a: a.window.end)
    in_episode = [drifted and onset <= alert.window.end < settle for alert in ordered]
    inside = [alert for alert, flag in zip(ordered, in_episode, strict=True) if flag and alert.raises()]
    episode_ids = list(dict.fromkeys(alert.incident_id for alert in inside))
    seen: set[str] = set()
    false_incidents = dict.fromkeys(FAMILIES, 0)
    reopens = [0, 0]
    for alert, flag in zip(ordered, in_episode, strict=True):
        if alert.state != "open":
            continue
        if alert.incident_id in seen:
            reopens[0 if flag else 1] += 1
        elif not flag:
            false_incidents[alert.monitor] += 1
        seen.add(alert.incident_id)
    families = dict.fromkeys(
        c.monitor for alert in ordered if alert.incident_id in episode_ids for c in alert.contributors
    )
    first = inside[0] if inside else None
    closes = [alert for alert in ordered if alert.state == "closed"]
    times = stream["event_time"]
    return Outcome(
        false_incidents=false_incidents,
        no_drift_days=STREAM_DAYS - (REVERT_DAY + 14 - ONSET_DAY if drifted else 0),
        episode_incidents=len(episode_ids),
        episode_families=tuple(families),
        delay_invoices=None if first is None else int(((times >= onset) & (times <= first.window.end)).sum()),
        delay_days=None if first is None else (first.window.end - onset).total_seconds() / 86_400.0,
        closed_after_revert=any(alert.window.end >= CUTOFF + timedelta(days=REVERT_DAY) for alert in closes),
        reopens=(reopens[0], reopens[1]),
    )


def _families(outcomes: list[Outcome]) -> str:
    """Families in the episode incidents over all seeds, e.g. "activity 5, invoice 1"."""
    counts = Counter(SHORT[family] for outcome in outcomes for family in outcome.episode_families)
    return ", ".join(f"{family} {count}" for family, count in sorted(counts.items())) or "-"


def _median(values: list[float]) -> str:
    return f"{np.median(values):.0f}" if values else "-"


def scenario_rows(data: Data, settings: DriftSettings, seeds: tuple[int, ...] = SEEDS) -> list[dict[str, object]]:
    """Every scenario × seed with the reference-calibrated engine, plus the control with snapshot-only calibration."""
    references = calibration.from_invoices(data.reference, settings)
    activity = calibration.activity_from_invoices(data.reference, settings)
    runs: list[tuple[str, Injection | None, dict[str, StatisticReference] | None, ActivityReference | None]]
    runs = [(name, inject, references, activity) for name, inject in SCENARIOS.items()]
    runs.append(("control, snapshot-bin calibration", None, None, None))
    rows = []
    for name, inject, refs, activity_ref in runs:
        outcomes, evaluations = [], 0
        for seed in seeds:
            rng = np.random.default_rng(seed)
            stream = day_bootstrap(data.reference, rng)
            stream = inject(stream, data, rng) if inject else stream
            engine = DriftEngine(data.snapshot, settings, refs, activity=activity_ref)
            outcomes.append(score(replay(engine, stream), stream, drifted=inject is not None))
            evaluations += len(stream) // settings.invoice_step
        detected = [o for o in outcomes if o.delay_invoices is not None]
        delays = [
            (o.delay_invoices, o.delay_days)
            for o in detected
            if o.delay_invoices is not None and o.delay_days is not None
        ]
        days = sum(o.no_drift_days for o in outcomes)
        false = {family: sum(o.false_incidents[family] for o in outcomes) for family in FAMILIES}
        rows.append(
            {
                "scenario": name,
                "false/90d invoice": round(90 * false["invoice_behaviour"] / days, 2),
                "false/90d activity": round(90 * false["customer_activity"] / days, 2) if activity_ref else "-",
                "delay inv (median)": _median([invoices for invoices, _ in delays]) if inject else "-",
                "delay days (median)": _median([days for _, days in delays]) if inject else "-",
                "missed": f"{len(outcomes) - len(detected)}/{len(outcomes)}" if inject else "-",
                "found ≤30 d": f"{sum(days <= 30 for _, days in delays)}/{len(outcomes)}" if inject else "-",
                "incidents/episode": "/".join(str(o.episode_incidents) for o in outcomes) if inject else "-",
                "families": _families(outcomes) if inject else "-",
                "closed after revert": f"{sum(o.closed_after_revert for o in detected)}/{len(detected)}"
                if inject
                else "-",
                "re-opens in/out": f"{sum(o.reopens[0] for o in outcomes)}/{sum(o.reopens[1] for o in outcomes)}",
                "always-fire false/90d": round(90 * evaluations / (STREAM_DAYS * len(seeds)), 0),
            }
        )
    return rows


def assignments_of(data: Data, stream_lines: pd.DataFrame) -> pd.DataFrame:
    """Replay stream lines through the bootstrap aggregates; one assignment per invoice, as the worker scores.

    Features as of the invoice's time, scaled with the snapshot's transform, nearest centroid;
    ``before`` is the customer's segment before the invoice (None for a new customer).
    """
    before_cutoff = data.customers[data.customers["invoice_date"] < CUTOFF]
    aggregates: dict[str, CustomerAggregates] = batch_aggregates(before_cutoff).as_dict()
    membership = Membership.of(before_cutoff)
    centroids = np.array([segment.centroid for segment in data.snapshot.segments])
    ids = [segment.id for segment in data.snapshot.segments]
    current: dict[str, int] = dict(data.segments)
    rows = []
    for (invoice_no, customer), lines in stream_lines.groupby(["invoice_no", "customer_id"], sort=False):
        aggregate = aggregates.setdefault(customer, CustomerAggregates(customer_id=customer))
        for line in lines.itertuples(index=False):
            line_fields = {"stock_code": line.stock_code, "quantity": line.quantity, "country": line.country}
            moment_fields = {"invoice_date": line.invoice_date, "unit_price": line.unit_price}
            invoice_line = InvoiceLine(
                event_id=invoice_no, invoice_no=invoice_no, customer_id=customer, **line_fields, **moment_fields
            )
            apply_line(aggregate, invoice_line, membership)
        moment = lines["invoice_date"].iloc[0]
        features = compute_features(aggregate, moment)
        if features is None:
            continue
        vector = transform_vector(features, data.snapshot.transform, data.snapshot.feature_names)
        distances = np.linalg.norm(centroids - vector, axis=1)
        after = ids[int(distances.argmin())]
        rows.append((moment, customer, current.get(customer), after, float(distances.min())))
        current[customer] = after
    return pd.DataFrame(rows, columns=["event_time", "customer_id", "before", "after", "distance"])


def real_year(data: Data, settings: DriftSettings) -> list[DriftAlert]:
    """Reference before 2011-06-01, the real stream after, both families and the fast tier."""
    lines = data.customers[data.customers["invoice_date"] >= CUTOFF]
    assignments = assignments_of(data, lines)
    references = calibration.from_invoices(data.reference, settings)
    engine = DriftEngine(
        data.snapshot, settings, references, activity=calibration.activity_from_invoices(data.reference, settings)
    )
    return replay(engine, data.stream, assignments)


def _table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    widths = [max(len(column), *(len(str(row[column])) for row in rows)) for column in columns]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += ["  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _alert_line(alert: DriftAlert) -> str:
    top = ", ".join(f"{c.name} {c.shift:+.3g}" for c in alert.contributions[:3])
    state = "joined" if alert.state == "update" else alert.state
    return (
        f"{alert.window.end:%Y-%m-%d} {state:<7}{alert.severity:<9}{alert.monitor:<18}{alert.incident_id:<16}"
        f"{alert.method}({alert.statistic}) {alert.value:.3g} / {alert.threshold:.3g}  [{top}]"
    )


def run(dataset: Path, seeds: tuple[int, ...] = SEEDS, real: bool = True) -> dict[str, object]:
    """Scenario table and (unless ``real`` is False) real-year alerts; prints both and returns them."""
    started = time.perf_counter()
    settings = DriftSettings()
    data = prepare(dataset)
    rows = scenario_rows(data, settings, seeds)
    print(
        f"Injected drifts, seeds {', '.join(map(str, seeds))} × {STREAM_DAYS} day-bootstrap days; "
        f"episode days {ONSET_DAY}–{REVERT_DAY}"
    )
    print(_table(rows))
    print("never-fire baseline: 0 false incidents, every drift missed")
    alerts = real_year(data, settings) if real else []
    if real:
        print(f"\nReal year: reference < {CUTOFF:%Y-%m-%d}, stream after ({len(data.stream):,} invoices)")
    for alert in alerts:
        if alert.state != "update" or alert.raises():
            print(_alert_line(alert))
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f} s")
    return {"scenarios": rows, "real_year": [alert.model_dump(mode="json") for alert in alerts], "seconds": elapsed}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dataset", nargs="?", type=Path, default=DATASET)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="replay seeds (default: reported)")
    parser.add_argument("--no-real-year", action="store_true", help="scenario table only")
    arguments = parser.parse_args()
    run(arguments.dataset, tuple(arguments.seeds), real=not arguments.no_real_year)
