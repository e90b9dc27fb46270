"""Per-customer aggregates, updated in O(1) per invoice line.

This is the worker's incremental update function. The bootstrapper computes the
same numbers with vectorised pandas; a test folds the real data through
:func:`apply_line` and checks both agree for every customer. Deduplication is the
caller's job (by event id): this function counts what it is given.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from shared.contracts.invoice import InvoiceLine
from shared.features.catalog import is_product

LineKind = Literal["guest", "invalid_price", "non_product", "purchase", "cancellation"]


def classify(line: InvoiceLine) -> LineKind:
    """The cleaning rule that decides what a line feeds, in the order it is applied."""
    if line.unit_price <= 0:
        return "invalid_price"
    if line.customer_id is None:
        return "guest"
    if not is_product(line.stock_code):
        return "non_product"
    return "cancellation" if line.is_cancellation else "purchase"


_MONTH_KEYS: dict[int, str] = {}


def month_of(moment: datetime) -> str:
    """The ``YYYY-MM`` key of ``moment``'s month (memoised: formatting it for every line was a hot spot)."""
    number = moment.year * 12 + moment.month
    key = _MONTH_KEYS.get(number)
    if key is None:
        key = _MONTH_KEYS[number] = f"{moment.year:04d}-{moment.month:02d}"
    return key


@dataclass
class CustomerAggregates:
    """Everything the features need, kept exactly (no sketches) so batch and stream agree."""

    customer_id: str
    country: str = ""
    lines: int = 0
    purchase_lines: int = 0
    cancel_lines: int = 0
    non_product_lines: int = 0
    units: int = 0
    gross_spend: float = 0.0
    cancel_amount: float = 0.0
    non_product_amount: float = 0.0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None
    invoices: set[str] = field(default_factory=set)
    cancel_invoices: set[str] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    month_spend: dict[str, float] = field(default_factory=dict)
    # Net units per stock code over product lines (returns negative): what the customer adds
    # to its segment's product popularity (``segment:{id}:products``). A code stays when its
    # units net to zero: the customer has had it, so it is never recommended to them.
    product_units: dict[str, int] = field(default_factory=dict)

    @property
    def net_spend(self) -> float:
        return self.gross_spend - self.cancel_amount

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: sets become sorted lists, times ISO strings, keys sorted."""
        return orjson.loads(self.to_json())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerAggregates:
        values = dict(data)
        for name in ("invoices", "cancel_invoices"):
            values[name] = set(values.get(name, ()))
        # Stock codes are interned: a few thousand codes shared by every loaded customer's
        # products and product_units, instead of one string per customer and product.
        values["products"] = {sys.intern(code) for code in values.get("products", ())}
        values["product_units"] = {sys.intern(code): units for code, units in values.get("product_units", {}).items()}
        for name in ("first_seen", "last_seen", "first_purchase", "last_purchase"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        return cls(**values)

    def to_json(self) -> str:
        """Canonical JSON (sorted sets and keys): the same aggregates always give the same text.

        orjson, because the worker rewrites every touched customer's record in each
        batch commit: about 5x faster than the standard library on a large record.
        """
        plain = {name: sorted(value) if isinstance(value, set) else value for name, value in self.__dict__.items()}
        return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str) -> CustomerAggregates:
        return cls.from_dict(orjson.loads(text))


@dataclass
class GuestStats:
    """Lines without a customer id: counted for the shop's totals, never clustered."""

    lines: int = 0
    amount: float = 0.0
    invoices: set[str] = field(default_factory=set)


def apply_line(aggregates: CustomerAggregates, line: InvoiceLine, kind: LineKind | None = None) -> LineKind:
    """Fold one customer line into its aggregates and say what it counted as.

    Lines with a price of zero or less are counted nowhere (customers and guests
    alike), as in the batch cleaning; guest lines are refused (they have no customer).
    A caller that already classified the line passes ``kind`` to skip doing it twice.
    """
    kind = kind or classify(line)
    if kind == "invalid_price":
        return kind
    if kind == "guest":
        raise ValueError("guest lines feed GuestStats, not customer aggregates")
    moment = line.invoice_date
    amount = line.amount
    aggregates.lines += 1
    if aggregates.first_seen is None or moment < aggregates.first_seen:
        aggregates.first_seen = moment
    if aggregates.last_seen is None or moment >= aggregates.last_seen:
        # The country of the latest line by event time (ties: the later arrival), so a
        # late-arriving old line does not overwrite it; the batch path takes the same.
        aggregates.country = line.country
        aggregates.last_seen = moment
    if kind == "non_product":
        aggregates.non_product_lines += 1
        aggregates.non_product_amount += amount
        return kind
    month = month_of(moment)
    aggregates.month_spend[month] = aggregates.month_spend.get(month, 0.0) + amount
    code = line.stock_code
    units = aggregates.product_units
    if code in units:
        units[code] += line.quantity
    else:
        code = sys.intern(code)  # a few thousand codes, shared by every customer's records
        units[code] = line.quantity
    if kind == "cancellation":
        aggregates.cancel_lines += 1
        aggregates.cancel_amount -= amount
        aggregates.cancel_invoices.add(line.invoice_no)
        return kind
    aggregates.purchase_lines += 1
    aggregates.units += line.quantity
    aggregates.gross_spend += amount
    aggregates.invoices.add(line.invoice_no)
    aggregates.products.add(code)
    if aggregates.first_purchase is None or moment < aggregates.first_purchase:
        aggregates.first_purchase = moment
    if aggregates.last_purchase is None or moment > aggregates.last_purchase:
        aggregates.last_purchase = moment
    return kind


def apply_guest_line(stats: GuestStats, line: InvoiceLine) -> None:
    """Fold one guest line into the shop-wide guest statistics."""
    stats.lines += 1
    stats.amount += line.amount
    stats.invoices.add(line.invoice_no)
