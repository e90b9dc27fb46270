"""Day-bootstrap replays of a reference window: the null that every family is calibrated on.

A replay is a run of whole reference days drawn with replacement and laid end to end
from a start day: each day's rows keep their time of day, values and customers, so
the clumpiness within a day (a wholesaler's several invoices) is kept, and nothing
changes over the replay. The harness's no-drift controls are replays too (other seeds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


class DayBlocks:
    """A reference table (any frame with ``event_time``) cut into its days, ready to be replayed."""

    def __init__(self, reference: pd.DataFrame) -> None:
        day = reference["event_time"].dt.normalize()
        self.days = [(value, frame) for value, frame in reference.groupby(day, sort=True)]

    def replay(self, days: int, rng: np.random.Generator, start: pd.Timestamp) -> pd.DataFrame:
        """``days`` event days from ``start``'s day, each a reference day drawn with replacement."""
        picks = rng.integers(0, len(self.days), size=days)
        parts = []
        for offset, pick in enumerate(picks.tolist()):
            value, frame = self.days[pick]
            part = frame.copy()
            part["event_time"] = part["event_time"] - value + start.normalize() + pd.Timedelta(days=offset)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)
