"""Alert levels set by expected run length, on replays of the reference window where nothing drifts.

Alibi Detect's online detectors configure an *expected run time* (ERT): how long,
on average, a detector runs on data without drift before it fires; the threshold is
whatever level gives that run time on bootstrap samples of the reference. Each
family here does the same in event days:

1. its checks (statistic × window size) are computed on every evaluation of
   ``null_replays`` day-bootstrap replays of the reference window (whole reference
   days drawn with replacement, so the data's own clumpiness is kept; the
   customer-activity family rotates each customer's own purchase days instead,
   :class:`~worker.drift.replays.CustomerCycles`);
2. each check is divided by its own ``null_quantile`` on those replays, so checks of
   different units become comparable; the family's score is their maximum;
3. the family opens after ``open_after`` consecutive evaluations above a level, so
   one level ``λ`` is chosen such that the replays' total event days divided by the
   number of such openings (an excursion above the level counts once) equals
   ``expected_run_days``. A check's threshold is ``λ × its null quantile``.

Run lengths without drift should then be roughly geometric (memoryless) with that
mean; :func:`run_lengths` gives them for the harness's goodness-of-fit check.

>>> scores = np.array([0.0, 2.0, 2.0, 0.0, 2.0, 2.0, 2.0, 0.0])
>>> openings(scores, level=1.0, open_after=2).tolist()
[2, 5]
>>> openings(scores, level=1.0, open_after=3).tolist()
[6]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NullSeries:
    """One replay's checks at every evaluation (rows) and the evaluations' event days since the replay began."""

    checks: np.ndarray  # evaluations × checks
    days: np.ndarray  # evaluations
    length_days: float


@dataclass(frozen=True)
class Calibration:
    """Per-check scale (its null quantile), the family level on the scaled checks, and the achieved run length."""

    scales: list[float]
    level: float
    run_days: float
    openings: int
    null_days: float

    def thresholds(self) -> list[float]:
        return [round(self.level * scale, 6) for scale in self.scales]


def openings(scores: np.ndarray, level: float, open_after: int) -> np.ndarray:
    """Indices at which a run of ``open_after`` consecutive scores above ``level`` completes; one per excursion."""
    above = np.concatenate([[False], scores > level, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    long_enough = ends - starts >= open_after
    return starts[long_enough] + open_after - 1


def _count(series: list[np.ndarray], level: float, open_after: int) -> int:
    return sum(len(openings(scores, level, open_after)) for scores in series)


def calibrate(replays: list[NullSeries], open_after: int, run_days: float, quantile: float) -> Calibration:
    """The lowest level λ whose openings on ``replays`` are at least ``run_days`` apart on average."""
    pooled = np.concatenate([replay.checks for replay in replays])
    scales = np.quantile(pooled, quantile, axis=0)
    scales = np.where(scales > 0, scales, 1.0)
    series = [(replay.checks / scales).max(axis=1) for replay in replays]
    total = float(sum(replay.length_days for replay in replays))
    wanted = max(1, int(total / run_days))  # openings allowed on the replays
    # Lowering the level adds openings until excursions merge into one long one, so the count is
    # not monotone near 0: walk down from the top to the first level with too many, then bisect.
    top = float(max(scores.max() for scores in series)) * 1.01 + 1e-9
    high = low = top
    for level in np.geomspace(top, top * 1e-3, 120):
        if _count(series, level, open_after) > wanted:
            low = float(level)
            break
        high = float(level)
    for _ in range(40):
        middle = float(np.sqrt(low * high))
        if _count(series, middle, open_after) > wanted:
            low = middle
        else:
            high = middle
    count = _count(series, high, open_after)
    return Calibration(
        scales=[float(scale) for scale in scales],
        level=high,
        run_days=total / count if count else float("inf"),
        openings=count,
        null_days=total,
    )


def run_lengths(replays: list[NullSeries], thresholds: list[float], open_after: int) -> tuple[list[float], int]:
    """Event days from each replay's start (or last opening) to each opening at ``thresholds``; replays never opened."""
    scales = np.asarray(thresholds)
    lengths, censored = [], 0
    for replay in replays:
        at = openings((replay.checks / scales).max(axis=1), 1.0, open_after)
        times = np.concatenate([[0.0], replay.days[at]])
        lengths.extend(np.diff(times).tolist())
        censored += len(at) == 0
    return lengths, censored
