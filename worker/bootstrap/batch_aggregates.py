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
from worker.bootstrap.cleaning import KINDS

KIND_CODES = {"purchase": PURCHASE, "cancellation": CANCELLATION, "non_product": NON_PRODUCT}


@dataclass
class BatchAggregates:
    """Every customer's aggregates as columns; ``ids[row]`` is the customer of a row (sorted)."""

    ids: list[str]
    columns: AggregateColumns
    line_rows: np.ndarray  # the customer row of each line folded
    new_invoice: np.ndarray  # whether each line opened an invoice for its customer (a product line)

    def __len__(self) -> int:
        return len(self.ids)

    def customer(self, customer_id: str) -> CustomerAggregates:
        return self.columns.get_row(self.ids.index(customer_id), customer_id)

    def as_dict(self) -> dict[str, CustomerAggregates]:
        """One object per customer (tests and tools; the bootstrap itself stays column-wise)."""
        return {cid: self.columns.get_row(row, cid) for row, cid in enumerate(self.ids)}


def codes_of(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of a column and the values they stand for (categoricals keep theirs)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(np.int64), column.cat.categories
    codes, values = pd.factorize(column)
    return codes.astype(np.int64), pd.Index(values)


def _first_of_pairs(left: np.ndarray, right: np.ndarray, right_count: int) -> np.ndarray:
    """Whether each (left, right) code pair occurs here for the first time (in order); ``right`` >= -1."""
    return ~pd.Series(left * (right_count + 1) + right + 1).duplicated().to_numpy()


def line_batch(customers: pd.DataFrame, slot: np.ndarray, columns: AggregateColumns) -> LineBatch:
    """The cleaned customer lines (event order) as the fold's input, newness from first occurrences."""
    kind = kind_codes(customers["kind"])
    purchase = kind == PURCHASE
    product = kind != NON_PRODUCT
    invoice, invoices = codes_of(customers["invoice_no"])
    stock, stocks = codes_of(customers["stock_code"])
    country, countries = codes_of(customers["country"])
    times = customers["invoice_date"].to_numpy("datetime64[us]").astype(np.int64)
    return LineBatch(
        slot=slot,
        kind=kind,
        quantity=customers["quantity"].to_numpy(np.int64),
        amount=customers["amount"].to_numpy(float),
        time=times,
        month=month_numbers(times),
        country=columns.countries.codes(countries.tolist())[country],
        new_invoice=product & _first_of_pairs(slot, np.where(product, invoice, -1), len(invoices)),
        new_product=purchase & _first_of_pairs(slot, np.where(purchase, stock, -1), len(stocks)),
    )


def kind_codes(kinds: pd.Series) -> np.ndarray:
    """The fold's line kinds (int8) of a ``kind`` column (categorical in :data:`KINDS` order, or text)."""
    if isinstance(kinds.dtype, pd.CategoricalDtype) and tuple(kinds.cat.categories) == KINDS:
        return kinds.cat.codes.to_numpy(np.int8)
    return kinds.map(KIND_CODES).to_numpy(np.int8)


def customer_codes(customers: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Each line's customer row and the customer ids, sorted (rows of :class:`BatchAggregates`)."""
    used = customers["customer_id"].astype("category").cat.remove_unused_categories()
    names = used.cat.categories.to_numpy(str)
    order = np.argsort(names, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[used.cat.codes.to_numpy()], names[order].tolist()


def batch_aggregates(customers: pd.DataFrame) -> BatchAggregates:
    """What folding every cleaned customer line (``CleanedHistory.customers``, event order) gives."""
    codes, ids = customer_codes(customers)
    columns = AggregateColumns(len(ids))
    columns.append(len(ids))
    lines = line_batch(customers, codes, columns)
    fold(columns, lines)
    return BatchAggregates(ids, columns, codes, lines.new_invoice)


def guest_stats(guests: pd.DataFrame) -> GuestStats:
    """Guest lines: count, amount and distinct invoices."""
    return GuestStats(lines=len(guests), amount=float(guests["amount"].sum()), invoices=guests["invoice_no"].nunique())


def scored_rows(aggregates: BatchAggregates) -> np.ndarray:
    """The rows of the customers that have features (a purchase), in row order (the feature frame's)."""
    rows = np.arange(len(aggregates))
    return rows[scoreable(aggregates.columns, rows)]


def feature_frame(aggregates: BatchAggregates, as_of: datetime) -> pd.DataFrame:
    """Features as of ``as_of``, one row per customer that has purchased (index: customer id, sorted)."""
    rows = scored_rows(aggregates)
    matrix = features_matrix(aggregates.columns, rows, np.full(len(rows), to_micros(as_of)))
    frame = pd.DataFrame(matrix, index=pd.Index([aggregates.ids[row] for row in rows], name="customer_id"))
    frame.columns = list(FEATURE_NAMES)
    return frame
