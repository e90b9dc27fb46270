"""The population stability index of count windows, smoothed, and the calibrated level an alert carries.

>>> import numpy as np
>>> round(float(smoothed_psi(np.array([[5.0, 5.0]]), 10, [0.5, 0.5])[0]), 6)
0.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

# Reference bins get at least this share, so PSI stays finite.
EPSILON = 1e-4


class Threshold(BaseModel):
    """A calibrated alert level and how it was obtained (goes into every alert)."""

    value: float
    source: str


def smoothed_psi(counts: np.ndarray, size: int, reference_shares: Sequence[float]) -> np.ndarray:
    """PSI Σ (w - r)·ln(w / r) of windows' bin counts (rows), each count smoothed by half an event.

    A window of fifty invoices cannot tell a 1% bin from an empty one; without smoothing an
    empty bin weighs ln(10%/0.01%) and one quiet day makes a spike (Jeffreys prior).
    """
    window = (counts + 0.5) / (size + 0.5 * counts.shape[1])
    reference = np.clip(np.asarray(reference_shares, dtype=float), EPSILON, None)
    return np.sum((window - reference) * np.log(window / reference), axis=1)
