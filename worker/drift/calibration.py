"""Calibration of every family on the reference window: references, and levels set by expected run length.

The invoice family's reference is the reference invoices' distribution of order value
and lines per invoice; its thresholds come from day-bootstrap replays of those
invoices (:mod:`worker.drift.replays`, :mod:`worker.drift.run_length`). Given only the
snapshot's decile bins (a bootstrap from before the reference invoices were stored),
the same is done on invoices drawn i.i.d. from the bins, and the threshold source says so.
The customer-activity family's null rotates each customer's own purchase days within
the reference invoices (:func:`activity_from_invoices`, keeping how regularly each
customer buys); it has no snapshot-only fallback. The
segment family's reference is the reference window's last scorings, as replayed
(:func:`segments_from_assignments`) or as the bootstrap stores them, raw
(:func:`segments_from_scorings`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pandas as pd

from shared.contracts.model_snapshot import ModelSnapshot, QuantileBins
from shared.features.scaling import transform_matrix
from worker.drift.activity_detector import ActivityReference, shortfall
from worker.drift.invoice_detector import InvoiceReference, ScaleReference, evaluate_series, log_lines
from worker.drift.reference import quantile_bins
from worker.drift.replays import CustomerCycles, DayBlocks
from worker.drift.run_length import Calibration, NullSeries, calibrate
from worker.drift.segment_detector import SegmentReference, label_frame
from worker.drift.segment_detector import evaluate_series as segment_series
from worker.drift.settings import DriftSettings
from worker.drift.statistics import Threshold

CLIP = (0.005, 0.995)  # quantiles that bound a value's weight in the mean-shift checks
SNAPSHOT_INVOICES = 20_000


def _scale(binned: np.ndarray, measured: np.ndarray, bins: int) -> ScaleReference:
    """Decile edges of ``binned``; clip bounds, mean and σ of ``measured`` (the scale the mean check uses)."""
    deciles = quantile_bins(binned, bins)
    low, high = np.quantile(measured, CLIP)
    clipped = np.clip(measured, low, high)
    return ScaleReference(
        edges=deciles.edges,
        shares=deciles.shares,
        low=float(low),
        high=float(high),
        mean=float(clipped.mean()),
        sd=float(clipped.std()) or 1.0,
    )


def _source(what: str, calibration: Calibration, settings: DriftSettings, replays: str = "day-bootstraps") -> str:
    return (
        f"expected run {settings.expected_run_days:g} event days on {settings.null_replays} {replays} of "
        f"{what} ({calibration.null_days:,.0f} days, {calibration.openings} openings): level "
        f"{calibration.level:.3g} × each check's {settings.null_quantile:g} null quantile"
    )


def null_series(
    blocks: DayBlocks,
    settings: DriftSettings,
    rng: np.random.Generator,
    replays: int,
    step: int,
    checks_of: Callable[[pd.DataFrame], np.ndarray],
) -> list[NullSeries]:
    """A family's checks (``checks_of`` a replay, one row per ``step`` rows) on day-bootstrap replays."""
    start = pd.Timestamp("2000-01-01")
    result = []
    for _ in range(replays):
        replay = blocks.replay(settings.null_days, rng, start)
        ends = np.arange(step, len(replay) + 1, step) - 1
        days = (replay["event_time"].to_numpy()[ends] - start.to_datetime64()) / np.timedelta64(1, "D")
        result.append(NullSeries(checks_of(replay), days.astype(float), float(settings.null_days)))
    return result


def invoice_checks(reference: InvoiceReference, settings: DriftSettings) -> Callable[[pd.DataFrame], np.ndarray]:
    """The invoice family's checks of an invoice table, as the monitor computes them."""
    return lambda table: evaluate_series(
        reference,
        table["log_order_value"].to_numpy(dtype=float),
        table["lines_per_invoice"].to_numpy(dtype=float),
        settings.invoice_step,
    )


def segment_checks(reference: SegmentReference, settings: DriftSettings) -> Callable[[pd.DataFrame], np.ndarray]:
    """The segment family's check of a labelled assignment table, as the monitor computes it."""
    return lambda table: segment_series(
        reference, table["label"].to_numpy(), settings.segment_window, settings.segment_step
    )


def invoice_calibration(reference: pd.DataFrame, settings: DriftSettings, what: str) -> InvoiceReference:
    """The invoice family's reference and thresholds from a reference invoice table (event order)."""
    values = reference["log_order_value"].to_numpy(dtype=float)
    lines = reference["lines_per_invoice"].to_numpy(dtype=float)
    amounts = np.sign(values) * np.expm1(np.abs(values))
    draft = InvoiceReference(
        order_value=_scale(values, values, settings.psi_bins),
        lines=_scale(lines, log_lines(lines), settings.psi_bins),
        median_order_value=float(np.median(amounts)),
        mean_lines=float(lines.mean()),
        windows=list(settings.invoice_windows),
        thresholds=[],
        source="",
    )
    rng = np.random.default_rng(settings.seed)
    checks = invoice_checks(draft, settings)
    null = null_series(DayBlocks(reference), settings, rng, settings.null_replays, settings.invoice_step, checks)
    result = calibrate(null, settings.open_after, settings.expected_run_days, settings.null_quantile)
    return draft.model_copy(update={"thresholds": result.thresholds(), "source": _source(what, result, settings)})


def from_invoices(reference: pd.DataFrame, settings: DriftSettings) -> InvoiceReference:
    """Calibrate on real reference invoices (an :func:`~worker.drift.invoice_table.invoice_table`)."""
    return invoice_calibration(reference, settings, f"{len(reference):,} reference invoices")


def sample_bins(bins: QuantileBins, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws from the piecewise-uniform distribution the bins describe."""
    edges = np.asarray(bins.edges)
    index = rng.choice(len(bins.shares), size=size, p=np.asarray(bins.shares) / np.sum(bins.shares))
    return edges[index] + rng.random(size) * (edges[index + 1] - edges[index])


def from_snapshot(snapshot: ModelSnapshot, settings: DriftSettings) -> InvoiceReference:
    """Calibrate on invoices drawn i.i.d. from the snapshot's bins, spread evenly over its training window."""
    rng = np.random.default_rng(settings.seed)
    start, end = snapshot.training_window
    end_time = pd.Timestamp(end)
    start_time = pd.Timestamp(start) if start is not None else end_time - pd.Timedelta(days=180)
    stats = snapshot.reference.invoice_stats
    table = pd.DataFrame(
        {
            "event_time": pd.date_range(start_time, end_time, periods=SNAPSHOT_INVOICES),
            "customer_id": [f"s{i}" for i in range(SNAPSHOT_INVOICES)],
            "log_order_value": sample_bins(stats["log_order_value"], SNAPSHOT_INVOICES, rng),
            "lines_per_invoice": np.maximum(
                1.0, np.round(sample_bins(stats["lines_per_invoice"], SNAPSHOT_INVOICES, rng))
            ),
        }
    )
    return invoice_calibration(table, settings, f"i.i.d. draws from the snapshot v{snapshot.version} bins")


def _null_series(counts: np.ndarray, settings: DriftSettings) -> np.ndarray:
    """The statistic at every day of a customers × days count matrix that has a full history."""
    history, window = settings.activity_history_days, settings.activity_window_days
    cumulative = np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(counts, axis=1)], axis=1)
    values = []
    for end in range(history + window, counts.shape[1] + 1):
        past = cumulative[:, end - window] - cumulative[:, end - window - history]
        loyal = past >= settings.activity_min_invoices
        if loyal.sum() < settings.activity_min_customers:
            values.append(np.nan)
            continue
        recent = cumulative[loyal, end] - cumulative[loyal, end - window]
        expected = past[loyal] * window / history
        values.append(shortfall(float(np.minimum(recent, expected).sum()), float(expected.sum())))
    return np.asarray(values)


def activity_null(
    reference: pd.DataFrame, settings: DriftSettings, rng: np.random.Generator, replays: int, days: int
) -> list[np.ndarray]:
    """The activity statistic on ``replays`` customer rotations of ``days`` evaluated trading days each.

    Rotations (:class:`~worker.drift.replays.CustomerCycles`), not day-bootstraps: the
    statistic compares customers with their own pace, and day-bootstraps scatter a regular
    customer's invoices over random days, a null far noisier than real customers (on the
    real summer the statistic then sat well below that null's mean, and a loss of a quarter
    of the loyal customers went unseen for months in 3 of 5 draws).
    """
    cycles = CustomerCycles(reference)
    length = settings.activity_history_days + settings.activity_window_days + days - 1
    return [_null_series(cycles.counts(length, rng), settings) for _ in range(replays)]


def activity_series(values: np.ndarray, mean: float, scale: float) -> NullSeries:
    """One replay's z-scores as a run-length series (one evaluation per event day; days too thin never alert)."""
    z = np.nan_to_num((values - mean) / scale, nan=-np.inf)[:, None]
    return NullSeries(z, np.arange(1.0, len(values) + 1), float(len(values)))


def activity_from_invoices(reference: pd.DataFrame, settings: DriftSettings) -> ActivityReference:
    """Null mean, σ and run-length level from customer rotations of the reference invoices.

    Each replay is ``null_days`` trading days (days with invoices), after a history and a
    recent window's worth, every customer's own sequence of trading days rotated by a
    random number of them (:func:`activity_null`); days without invoices carry no
    information about customers' pace.
    """
    rng = np.random.default_rng(settings.seed)
    series = activity_null(reference, settings, rng, settings.null_replays, settings.null_days)
    pooled = np.concatenate(series)
    mean, scale = float(np.nanmean(pooled)), float(np.nanstd(pooled, ddof=1)) or 1.0
    null = [activity_series(values, mean, scale) for values in series]
    result = calibrate(null, settings.activity_open_after, settings.expected_run_days, settings.null_quantile)
    days = reference["event_time"].dt.normalize()
    last = days.max().date()
    first = last - timedelta(days=settings.activity_history_days + settings.activity_window_days - 1)
    recent = reference[days.dt.date >= first]
    history: dict[str, list[list[int]]] = defaultdict(list)
    pairs = zip(recent["customer_id"], recent["event_time"].dt.date, strict=True)
    for (customer, day), count in Counter(pairs).items():
        history[str(customer)].append([day.toordinal(), count])
    return ActivityReference(
        mean=mean,
        scale=scale,
        threshold=Threshold(
            value=result.thresholds()[0],
            source=_source("the reference's trading days", result, settings, "customer rotations"),
        ),
        history={customer: sorted(rows) for customer, rows in history.items()},
    )


def segment_reference_rows(assignments: pd.DataFrame, settings: DriftSettings) -> pd.DataFrame:
    """The assignments of the reference window's last ``segment_reference_days`` event days."""
    since = assignments["event_time"].max().normalize() - pd.Timedelta(days=settings.segment_reference_days - 1)
    return assignments[assignments["event_time"] >= since]


def segments_from_scorings(
    snapshot: ModelSnapshot, scorings: pd.DataFrame, feature_names: list[str], settings: DriftSettings
) -> SegmentReference:
    """:func:`segments_from_assignments` of stored raw features, scaled as a worker of ``snapshot`` scales them."""
    return segments_from_assignments(snapshot, scaled(snapshot, scorings, feature_names), settings)


def scaled(snapshot: ModelSnapshot, scorings: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """Scorings with raw ``features`` (in ``feature_names`` order) and the ``vector`` a worker of ``snapshot`` sends."""
    raw = np.asarray(scorings["features"].tolist(), dtype=float).reshape(-1, len(feature_names))
    columns = [feature_names.index(name) for name in snapshot.feature_names]
    vectors = transform_matrix(raw[:, columns], snapshot.transform, snapshot.feature_names)
    return scorings.assign(vector=vectors.tolist())


def segments_from_assignments(
    snapshot: ModelSnapshot, assignments: pd.DataFrame, settings: DriftSettings
) -> SegmentReference:
    """The segment family's reference: the reference window's scored customers over the snapshot's centroids.

    ``assignments`` has event_time, customer_id and vector (the scaled feature vector a
    worker scored, as of that event) for the reference window, in event order.
    """
    draft = SegmentReference(
        ids=[segment.id for segment in snapshot.segments],
        names=[segment.name for segment in snapshot.segments],
        centroids=[list(segment.centroid) for segment in snapshot.segments],
        features=[snapshot.feature_names.index(name) for name in settings.segment_features],
        feature_names=list(settings.segment_features),
        shares=[],
        threshold=0.0,
        source="",
    )
    labelled = label_frame(draft, segment_reference_rows(assignments, settings))
    counts = np.bincount(labelled["label"].to_numpy(), minlength=len(draft.ids))
    draft = draft.model_copy(update={"shares": (counts / counts.sum()).tolist()})
    rng = np.random.default_rng(settings.seed)
    checks = segment_checks(draft, settings)
    null = null_series(DayBlocks(labelled), settings, rng, settings.null_replays, settings.segment_step, checks)
    result = calibrate(null, settings.open_after, settings.expected_run_days, settings.null_quantile)
    what = (
        f"{len(labelled):,} customers scored in the last {settings.segment_reference_days} days of the reference "
        f"window over the v{snapshot.version} centroids by {', '.join(settings.segment_features)}"
    )
    return draft.model_copy(update={"threshold": result.thresholds()[0], "source": _source(what, result, settings)})
