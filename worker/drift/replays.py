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
        ordered = reference.sort_values("event_time", kind="stable").reset_index(drop=True)
        day = ordered["event_time"].dt.normalize()
        self.table = ordered
        self.day_values = day.unique()
        bounds = np.searchsorted(day.to_numpy(), self.day_values)
        self.starts = bounds
        self.ends = np.append(bounds[1:], len(ordered))

    def replay(self, days: int, rng: np.random.Generator, start: pd.Timestamp) -> pd.DataFrame:
        """``days`` event days from ``start``'s day, each a reference day drawn with replacement."""
        picks = rng.integers(0, len(self.day_values), size=days)
        index = np.concatenate([np.arange(self.starts[pick], self.ends[pick]) for pick in picks])
        lengths = self.ends[picks] - self.starts[picks]
        shift = (start.normalize() + pd.to_timedelta(np.arange(days), unit="D")).to_numpy() - self.day_values[picks]
        part = self.table.iloc[index].reset_index(drop=True)
        part["event_time"] = part["event_time"].to_numpy() + np.repeat(shift, lengths)
        return part
