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

from shared.features.aggregates import AggregateColumns, Countries, CustomerAggregates, GuestStats
from shared.features.clock import month_numbers, to_micros
from shared.features.fold import CANCELLATION, NON_PRODUCT, PURCHASE, LineBatch, fold
from shared.features.vector import FEATURE_NAMES, features_matrix, scoreable
from worker.bootstrap.cleaning import KINDS

KIND_CODES = {"purchase": PURCHASE, "cancellation": CANCELLATION, "non_product": NON_PRODUCT}


@dataclass(frozen=True)
class Pairs:
    """The distinct (customer row, code) pairs of some lines, numbered in order of first appearance."""

    lines: np.ndarray  # the lines considered (indices, in order)
    pair: np.ndarray  # the pair of each of those lines
    row: np.ndarray  # the customer row of each pair
    code: np.ndarray  # the code of each pair

    @classmethod
    def of(cls, rows: np.ndarray, codes: np.ndarray, size: int, lines: np.ndarray) -> Pairs:
        pair, unique = pd.factorize(rows[lines] * (size + 1) + codes[lines])
        return cls(lines, pair.astype(np.int64), unique // (size + 1), unique % (size + 1))

    def first(self, n_lines: int, among: np.ndarray) -> np.ndarray:
        """Over all ``n_lines``: whether a line is the first of its pair among the lines where ``among`` holds."""
        chosen = among[self.lines]
        first = np.full(len(self.row), n_lines)
        np.minimum.at(first, self.pair[chosen], self.lines[chosen])
        out = np.zeros(n_lines, dtype=bool)
        out[first[first < n_lines]] = True
        return out


@dataclass
class BatchAggregates:
    """Every customer's aggregates as columns; ``ids[row]`` is the customer of a row (sorted)."""

    ids: list[str]
    columns: AggregateColumns
    line_rows: np.ndarray  # the customer row of each line folded
    invoices: Pairs  # (customer, invoice) of the product lines: the customers' invoice members
    products: Pairs  # (customer, stock code) of the product lines: the customers' product members

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


def kind_codes(kinds: pd.Series) -> np.ndarray:
    """The fold's line kinds (int8) of a ``kind`` column (categorical in :data:`KINDS` order, or text)."""
    if isinstance(kinds.dtype, pd.CategoricalDtype) and tuple(kinds.cat.categories) == KINDS:
        return kinds.cat.codes.to_numpy(np.int8)
    return kinds.map(KIND_CODES).to_numpy(np.int8)


def customer_codes(customers: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Each line's customer row and the customer ids, sorted (rows of :class:`BatchAggregates`)."""
    codes, categories = codes_of(customers["customer_id"])
    present = np.flatnonzero(np.bincount(codes, minlength=len(categories)))
    names = np.asarray(categories, dtype=str)[present]
    order = np.argsort(names, kind="stable")
    rank = np.zeros(len(categories), dtype=np.int64)
    rank[present[order]] = np.arange(len(order))
    return rank[codes], names[order].tolist()


@dataclass(frozen=True)
class CustomerLines:
    """Cleaned customer lines as the fold's input: customers numbered (``ids``, sorted), flags set."""

    ids: list[str]
    batch: LineBatch
    invoices: Pairs  # (customer, invoice) of the product lines
    products: Pairs  # (customer, stock code) of the product lines


def customer_lines(customers: pd.DataFrame, countries: Countries) -> CustomerLines:
    """The fold's :class:`LineBatch` of cleaned customer lines (event order), country codes from ``countries``.

    "New invoice" and "new product" are first occurrences in event order of a
    (customer, invoice) among the product lines and of a (customer, stock code)
    among the purchase lines: what Redis answers the worker, line after line.
    """
    slot, ids = customer_codes(customers)
    kind = kind_codes(customers["kind"])
    purchase, product = kind == PURCHASE, kind != NON_PRODUCT
    invoice, invoice_names = codes_of(customers["invoice_no"])
    stock, stock_names = codes_of(customers["stock_code"])
    country, country_names = codes_of(customers["country"])
    product_lines = np.flatnonzero(product)
    invoices = Pairs.of(slot, invoice, len(invoice_names), product_lines)
    products = Pairs.of(slot, stock, len(stock_names), product_lines)
    times = customers["invoice_date"].to_numpy("datetime64[us]").astype(np.int64)
    batch = LineBatch(
        slot=slot,
        kind=kind,
        quantity=customers["quantity"].to_numpy(np.int64),
        amount=customers["amount"].to_numpy(float),
        time=times,
        month=month_numbers(times),
        country=countries.codes(country_names.tolist())[country],
        new_invoice=invoices.first(len(slot), product),
        new_product=products.first(len(slot), purchase),
    )
    return CustomerLines(ids, batch, invoices, products)


def batch_aggregates(customers: pd.DataFrame) -> BatchAggregates:
    """What folding every cleaned customer line (``CleanedHistory.customers``, event order) gives."""
    columns = AggregateColumns()
    lines = customer_lines(customers, columns.countries)
    columns.append(len(lines.ids))
    fold(columns, lines.batch)
    return BatchAggregates(lines.ids, columns, lines.batch.slot, lines.invoices, lines.products)


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
