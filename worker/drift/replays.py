"""Replays of a reference window where nothing drifts: the nulls the families are calibrated on.

:class:`DayBlocks` (the invoice and segment families): a replay is a run of whole
reference days drawn with replacement and laid end to end from a start day: each day's
rows keep their time of day, values and customers, so the clumpiness within a day (a
wholesaler's several invoices) is kept, and nothing changes over the replay.

:class:`CustomerCycles` (the customer-activity family, and the harness's held-out seed
streams): each customer's own purchase days rotated, so customers also stay as regular
as they were. The harness's no-drift controls are replays too (other seeds).
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


class CustomerCycles:
    """A reference invoice table as each customer's own sequence of trading days, replayed rotated per customer.

    Day-bootstraps (:class:`DayBlocks`) draw every day independently, so a customer who buys
    every week in the reference buys on random days in a replay: long silences and bursts
    that real, regular customers do not have. The customer-activity family compares
    customers with their own pace, so its null must keep that regularity. Here each
    customer's purchase days over the reference's trading days (days with invoices, in
    order) are rotated by a random number of trading days of their own, a new one in every
    cycle of the reference's length (a replay longer than the reference repeats each
    customer's sequence, each time at another phase). Rates, gaps between purchases and
    several invoices on one day are kept; what is broken is the calendar that customers
    share, so nothing changes over a replay. A row keeps its values and time of day.
    """

    def __init__(self, reference: pd.DataFrame) -> None:
        ordered = reference.sort_values("event_time", kind="stable").reset_index(drop=True)
        day = ordered["event_time"].dt.normalize()
        self.table = ordered
        self.day_values = day.unique()
        self.period = len(self.day_values)
        self.day_index = np.searchsorted(self.day_values, day.to_numpy())
        self.time_of_day = (ordered["event_time"] - day).to_numpy()
        self.codes, self.customers = pd.factorize(ordered["customer_id"])

    def days(self, days: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the reference and the replay day (0 to ``days`` - 1) each lands on, in a fresh draw."""
        start = int(rng.integers(0, self.period))
        cycles = (start + days - 1) // self.period + 1
        rows, landed = [], []
        for cycle in range(cycles):
            shift = rng.integers(0, self.period, size=len(self.customers))
            day = cycle * self.period + (self.day_index + shift[self.codes]) % self.period - start
            inside = (day >= 0) & (day < days)
            rows.append(np.flatnonzero(inside))
            landed.append(day[inside])
        return np.concatenate(rows), np.concatenate(landed)

    def counts(self, days: int, rng: np.random.Generator) -> np.ndarray:
        """Invoices per reference customer (rows, in :attr:`customers` order) and replay day (columns)."""
        rows, day = self.days(days, rng)
        out = np.zeros((len(self.customers), days))
        np.add.at(out, (self.codes[rows], day), 1.0)
        return out

    def replay(self, days: int, rng: np.random.Generator, start: pd.Timestamp) -> pd.DataFrame:
        """``days`` event days from ``start``'s day, each customer's reference sequence rotated (see above)."""
        rows, day = self.days(days, rng)
        part = self.table.iloc[rows].reset_index(drop=True)
        moment = start.normalize().to_datetime64() + day.astype("timedelta64[D]") + self.time_of_day[rows]
        part["event_time"] = moment
        return part.sort_values("event_time", kind="stable").reset_index(drop=True)
