"""Distance statistics between a window and its reference, and thresholds calibrated from null chunks.

>>> import numpy as np
>>> round(psi([0.5, 0.5], [0.5, 0.5]), 6)
0.0
>>> grid = np.linspace(0.0, 1.0, 101)
>>> round(normalised_wasserstein(grid + 0.5, grid, scale=0.5), 3)
1.0
>>> calibrated([0.1, 0.2, 0.3], sigmas=3.0, source="three chunks").value
0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel
from scipy.stats import wasserstein_distance

# Empty bins get this share, so PSI stays finite and one stray value cannot dominate it.
EPSILON = 1e-4


class Threshold(BaseModel):
    """A calibrated alert level and how it was obtained (goes into every alert)."""

    value: float
    source: str


def psi(window_shares: ArrayLike, reference_shares: ArrayLike) -> float:
    """Population stability index Σ (w - r)·ln(w / r) over bins."""
    window = np.clip(np.asarray(window_shares, dtype=float), EPSILON, None)
    reference = np.clip(np.asarray(reference_shares, dtype=float), EPSILON, None)
    return float(np.sum((window - reference) * np.log(window / reference)))


def normalised_wasserstein(values: np.ndarray, reference_grid: np.ndarray, scale: float) -> float:
    """Earth mover's distance in units of the reference spread (1.0 = the whole mass moved by one scale)."""
    return float(wasserstein_distance(values, reference_grid) / scale)


def calibrated(null_values: Sequence[float], sigmas: float, source: str) -> Threshold:
    """mean + ``sigmas``·σ of a statistic computed on chunks where nothing drifted."""
    values = np.asarray(null_values, dtype=float)
    value = float(values.mean() + sigmas * values.std(ddof=1))
    return Threshold(value=round(value, 6), source=f"{source}: mean+{sigmas:g}σ over {len(values)} chunks")
