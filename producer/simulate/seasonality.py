"""Event-time shape of demand: weekdays, a yearly wave and the pre-Christmas peak.

Invoice times are a non-homogeneous Poisson process: given a customer's number of
invoices in a window, their days are independent draws from the daily intensity
restricted to that window (inverse CDF), then a time of day in opening hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

# Monday .. Sunday; like the real shop, no trade on Saturdays.
WEEKDAY = np.array([1.0, 1.05, 1.1, 1.15, 0.9, 0.0, 0.55])
HOURS = np.arange(7, 21)
HOUR_WEIGHTS = np.array([0.2, 0.7, 1.0, 1.3, 1.5, 1.6, 1.4, 1.2, 1.0, 0.8, 0.5, 0.3, 0.2, 0.1])


def daily_intensity(start: datetime, days: int) -> np.ndarray:
    """Relative purchase intensity of each day from ``start`` (closed 24 Dec - 3 Jan)."""
    dates = [start + timedelta(days=d) for d in range(days)]
    weekday = WEEKDAY[[d.weekday() for d in dates]]
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=float)
    yearly = 1.0 + 0.25 * np.cos(2 * np.pi * (doy - 300) / 365.25)
    peak = 0.9 * np.exp(-(((doy - 325) / 20.0) ** 2))
    closed = np.array([(d.month == 12 and d.day >= 24) or (d.month == 1 and d.day <= 3) for d in dates])
    return np.where(closed, 0.0, weekday * (yearly + peak))


def sample_days(rng: np.random.Generator, intensity: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One day per entry, drawn from ``intensity`` restricted to ``[lo, hi)`` (day indices)."""
    cdf = np.cumsum(intensity) / intensity.sum()
    before = np.concatenate([[0.0], cdf])
    u = before[lo] + rng.random(len(lo)) * (before[hi] - before[lo])
    return np.clip(np.searchsorted(cdf, u, side="right"), lo, hi - 1)


def sample_seconds_of_day(rng: np.random.Generator, size: int) -> np.ndarray:
    """Seconds after midnight in opening hours, whole minutes as in the source data."""
    hours = rng.choice(HOURS, size=size, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    return hours * 3600 + rng.integers(0, 60, size=size) * 60
