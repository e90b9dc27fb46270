"""The batch cleaning rules, each counted, in the order :func:`shared.features.classify` applies them.

1. Exact duplicate rows (all eight fields) are dropped: the stream drops them by
   event id, which is a hash of the same eight fields.
2. Rows (customer and guest) with a unit price of zero or less are excluded.
3. Rows without a customer feed the guest statistics, never customer features.
4. Non-product codes (:mod:`shared.features.catalog`) stay, as ``non_product``.
5. Cancellations (invoice starting with ``C``) stay, as ``cancellation``.
6. Outliers are not deleted: robust scaling handles them. They are only counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.features.catalog import NON_PRODUCT_CODES, NON_PRODUCT_PREFIXES

# Only reported: a line this large is rare and real (the famous 80,995 paper birds).
OUTLIER_QUANTITY = 10_000


@dataclass(frozen=True)
class CleaningReport:
    """Rows in, rows out, and why."""

    rows_in: int
    duplicates_dropped: int
    guest_rows: int
    invalid_price_dropped: int
    purchase_rows: int
    cancellation_rows: int
    non_product_rows: int
    outlier_rows_kept: int
    customers: int

    @property
    def rows_out(self) -> int:
        return self.purchase_rows + self.cancellation_rows + self.non_product_rows

    def __str__(self) -> str:
        rows = [
            ("rows in", self.rows_in, ""),
            ("exact duplicates", -self.duplicates_dropped, "dropped (same event id in the stream)"),
            ("unit price <= 0", -self.invalid_price_dropped, "excluded"),
            ("guest rows", -self.guest_rows, "no customer id: guest statistics only"),
            ("customer rows out", self.rows_out, f"{self.customers:,} customers"),
            ("  purchases", self.purchase_rows, ""),
            ("  cancellations", self.cancellation_rows, "kept, reduce spend"),
            ("  non-product lines", self.non_product_rows, "kept out of product features"),
            ("  |quantity| >= 10,000", self.outlier_rows_kept, "outliers, kept"),
        ]
        return "\n".join(f"{label:<24}{count:>+10,}  {why}".rstrip() for label, count, why in rows)


@dataclass(frozen=True)
class CleanedHistory:
    """Customer rows (with ``kind`` and ``amount``) and guest rows, both in event order."""

    customers: pd.DataFrame
    guests: pd.DataFrame
    report: CleaningReport


KINDS = ("purchase", "cancellation", "non_product")  # ``kind`` categories; codes 0, 1, 2 are the fold's kind codes


def _flag(column: pd.Series, test: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """``test`` of every value, computed once per distinct value when the column is categorical."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return test(pd.Series(column.cat.categories)).to_numpy(bool)[column.cat.codes.to_numpy()]
    return test(column).to_numpy(bool)


def line_kinds(frame: pd.DataFrame) -> pd.Series:
    """Vectorised :func:`shared.features.classify` for priced rows that have a customer (categorical, :data:`KINDS`)."""
    product = ~_flag(
        frame["stock_code"], lambda codes: codes.isin(NON_PRODUCT_CODES) | codes.str.startswith(NON_PRODUCT_PREFIXES)
    )
    cancellation = _flag(frame["invoice_no"], lambda numbers: numbers.str.startswith("C"))
    codes = np.select([~product, cancellation], [2, 1], default=0).astype(np.int8)
    return pd.Series(pd.Categorical.from_codes(codes, KINDS), index=frame.index)


def _codes(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy(np.int64)
    return pd.factorize(column)[0].astype(np.int64)


def duplicates(history: pd.DataFrame) -> np.ndarray:
    """Rule 1: rows equal in all eight fields to an earlier row.

    Only rows that share their (invoice, stock code) with another row can be
    duplicates, so the full comparison runs on those few (integer codes first).
    """
    stock = _codes(history["stock_code"])
    pair = _codes(history["invoice_no"]) * (int(stock.max(initial=0)) + 2) + stock + 1
    candidates = pd.Series(pair).duplicated(keep=False).to_numpy()
    repeated = np.zeros(len(history), dtype=bool)
    repeated[candidates] = history[candidates].duplicated(keep="first").to_numpy()
    return repeated


def clean(history: pd.DataFrame) -> CleanedHistory:
    """Apply the rules above to the output of :func:`~worker.bootstrap.loading.load_history`."""
    repeated = duplicates(history)
    invalid = ~repeated & (history["unit_price"] <= 0).to_numpy()
    priced = ~repeated & ~invalid
    no_customer = history["customer_id"].isna().to_numpy()
    guests = history[priced & no_customer].reset_index(drop=True)
    guests["amount"] = guests["quantity"] * guests["unit_price"]
    rows = history[priced & ~no_customer].reset_index(drop=True)
    rows["kind"] = line_kinds(rows)
    rows["amount"] = rows["quantity"] * rows["unit_price"]
    counts = rows["kind"].value_counts()
    report = CleaningReport(
        rows_in=len(history),
        duplicates_dropped=int(repeated.sum()),
        guest_rows=len(guests),
        invalid_price_dropped=int(invalid.sum()),
        purchase_rows=int(counts.get("purchase", 0)),
        cancellation_rows=int(counts.get("cancellation", 0)),
        non_product_rows=int(counts.get("non_product", 0)),
        outlier_rows_kept=int((rows["quantity"].abs() >= OUTLIER_QUANTITY).sum()),
        customers=int(rows["customer_id"].nunique()),
    )
    return CleanedHistory(customers=rows, guests=guests, report=report)
