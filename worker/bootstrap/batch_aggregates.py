"""Per-customer aggregates and features for the whole history at once, column-wise.

The history's customer lines go through the worker's own fold
(:func:`shared.features.fold.fold`) in one call, with "new invoice" and "new
product" taken from first occurrences in event order (what Redis answers the
worker, line after line). So the bootstrap computes exactly what the stream would
have computed from the same lines, in a few vectorised passes; a test checks both
against an independent pandas groupby and against the one-line reference fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from shared.features.aggregates import AggregateColumns, CustomerAggregates, GuestStats
from shared.features.clock import month_numbers, to_micros
from shared.features.fold import CANCELLATION, NON_PRODUCT, PURCHASE, LineBatch, fold
from shared.features.vector import FEATURE_NAMES, features_matrix, scoreable

KIND_CODES = {"purchase": PURCHASE, "cancellation": CANCELLATION, "non_product": NON_PRODUCT}


@dataclass
class BatchAggregates:
    """Every customer's aggregates as columns; ``ids[row]`` is the customer of a row (sorted)."""

    ids: list[str]
    columns: AggregateColumns

    def __len__(self) -> int:
        return len(self.ids)

    def customer(self, customer_id: str) -> CustomerAggregates:
        return self.columns.get_row(self.ids.index(customer_id), customer_id)

    def as_dict(self) -> dict[str, CustomerAggregates]:
        """One object per customer (tests and tools; the bootstrap itself stays column-wise)."""
        return {cid: self.columns.get_row(row, cid) for row, cid in enumerate(self.ids)}


def line_batch(customers: pd.DataFrame, slot: np.ndarray, columns: AggregateColumns) -> LineBatch:
    """The cleaned customer lines (event order) as the fold's input, newness from first occurrences."""
    kind = customers["kind"].map(KIND_CODES).to_numpy(np.int8)
    purchase = kind == PURCHASE
    product = kind != NON_PRODUCT
    bought = pd.DataFrame({"c": customers["customer_id"], "s": customers["stock_code"], "p": purchase})
    opened = pd.DataFrame({"c": customers["customer_id"], "i": customers["invoice_no"], "p": product})
    times = customers["invoice_date"].to_numpy("datetime64[us]").astype(np.int64)
    return LineBatch(
        slot=slot,
        kind=kind,
        quantity=customers["quantity"].to_numpy(np.int64),
        amount=customers["amount"].to_numpy(float),
        time=times,
        month=month_numbers(times),
        country=columns.countries.codes(customers["country"].tolist()),
        new_invoice=product & ~opened.duplicated().to_numpy(),
        new_product=purchase & ~bought.duplicated().to_numpy(),
    )


def batch_aggregates(customers: pd.DataFrame) -> BatchAggregates:
    """What folding every cleaned customer line (``CleanedHistory.customers``, event order) gives."""
    codes, ids = pd.factorize(customers["customer_id"], sort=True)
    columns = AggregateColumns(len(ids))
    columns.append(len(ids))
    fold(columns, line_batch(customers, codes.astype(np.int64), columns))
    return BatchAggregates(list(ids), columns)


def guest_stats(guests: pd.DataFrame) -> GuestStats:
    """Guest lines: count, amount and distinct invoices."""
    return GuestStats(lines=len(guests), amount=float(guests["amount"].sum()), invoices=guests["invoice_no"].nunique())


def feature_frame(aggregates: BatchAggregates, as_of: datetime) -> pd.DataFrame:
    """Features as of ``as_of``, one row per customer that has purchased (index: customer id, sorted)."""
    rows = np.arange(len(aggregates))
    rows = rows[scoreable(aggregates.columns, rows)]
    matrix = features_matrix(aggregates.columns, rows, np.full(len(rows), to_micros(as_of)))
    frame = pd.DataFrame(matrix, index=pd.Index([aggregates.ids[row] for row in rows], name="customer_id"))
    frame.columns = list(FEATURE_NAMES)
    return frame
