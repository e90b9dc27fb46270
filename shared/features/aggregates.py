"""Per-customer aggregates of bounded size: everything the features need, kept exactly.

Why bounded: a retailer has millions of customers and years of history, so what a
customer costs in memory must not grow with its history. The collections that do
grow (its invoices, its products and their net units) live in Redis, and only
their sizes are kept here; whether a line brings a new invoice or product comes
from there (:class:`Membership` is the in-memory stand-in for pure code and
tests). Monthly spend is kept over a window of :data:`MONTH_WINDOW` months ending
with the customer's latest active month, which is all the features look at.

Two forms, one meaning: :class:`CustomerAggregates` for one customer (tools,
tests, the stored record's ``agg`` JSON) and :class:`AggregateColumns` for many
(numpy columns indexed by a slot: the worker's memory and the bootstrap's batch).
The worker folds lines column-wise (:mod:`shared.features.fold`); the bootstrap
computes the same columns with pandas; :func:`apply_line` is the one-line
reference both are tested against.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import orjson

from shared.contracts.invoice import InvoiceLine
from shared.features.catalog import is_product
from shared.features.clock import (
    NO_MONTH,
    NO_TIME,
    month_key,
    month_number,
    month_of_key,
    optional_datetime,
    optional_micros,
    to_micros,
)

LineKind = Literal["guest", "invalid_price", "non_product", "purchase", "cancellation"]
MONTH_WINDOW = 12  # months of spend kept per customer and used by the monthly features

COUNT_FIELDS = (
    "lines",
    "purchase_lines",
    "cancel_lines",
    "non_product_lines",
    "units",
    "invoices",
    "cancel_invoices",
    "products",
)
AMOUNT_FIELDS = ("gross_spend", "cancel_amount", "non_product_amount")
TIME_FIELDS = ("first_seen", "last_seen", "first_purchase", "last_purchase")
MONTH_FIELDS = ("first_month", "last_month")
MONTHLY_CACHE = ("monthly_month", "monthly")  # columns kept in memory only (AggregateColumns)


def classify(line: InvoiceLine) -> LineKind:
    """The cleaning rule that decides what a line feeds, in the order it is applied."""
    if line.unit_price <= 0:
        return "invalid_price"
    if line.customer_id is None:
        return "guest"
    if not is_product(line.stock_code):
        return "non_product"
    return "cancellation" if line.is_cancellation else "purchase"


class Membership:
    """Which invoices and bought products a customer already has: the set-based oracle for pure code.

    The worker asks Redis instead (the customer's members hash); tests, the
    harness and :func:`apply_line` use this.
    """

    def __init__(self) -> None:
        self._invoices: set[tuple[str, str]] = set()
        self._products: set[tuple[str, str]] = set()

    @classmethod
    def of(cls, customer_lines: Any) -> Membership:
        """What cleaned customer lines (a frame with ``customer_id``, ``invoice_no``, ``stock_code``, ``kind``) hold."""
        membership = cls()
        product = customer_lines[customer_lines["kind"] != "non_product"]
        membership._invoices = set(zip(product["customer_id"], product["invoice_no"], strict=True))
        bought = product[product["kind"] == "purchase"]
        membership._products = set(zip(bought["customer_id"], bought["stock_code"], strict=True))
        return membership

    def new_invoice(self, customer_id: str, invoice_no: str) -> bool:
        key = (customer_id, invoice_no)
        if key in self._invoices:
            return False
        self._invoices.add(key)
        return True

    def new_product(self, customer_id: str, stock_code: str) -> bool:
        key = (customer_id, stock_code)
        if key in self._products:
            return False
        self._products.add(key)
        return True


@dataclass
class CustomerAggregates:
    """One customer's aggregates; the JSON form is the ``agg`` field of its Redis record."""

    customer_id: str
    country: str = ""
    lines: int = 0
    purchase_lines: int = 0
    cancel_lines: int = 0
    non_product_lines: int = 0
    units: int = 0
    invoices: int = 0
    cancel_invoices: int = 0
    products: int = 0
    gross_spend: float = 0.0
    cancel_amount: float = 0.0
    non_product_amount: float = 0.0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first_purchase: datetime | None = None
    last_purchase: datetime | None = None
    first_month: int = NO_MONTH
    last_month: int = NO_MONTH
    months: dict[int, float] = field(default_factory=dict)  # month number -> net product spend, in the window

    @property
    def net_spend(self) -> float:
        return self.gross_spend - self.cancel_amount

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: times ISO strings, months ``YYYY-MM`` keys, zero months left out."""
        out: dict[str, Any] = {name: getattr(self, name) for name in ("country", *COUNT_FIELDS, *AMOUNT_FIELDS)}
        for name in TIME_FIELDS:
            value = getattr(self, name)
            out[name] = value.isoformat() if value is not None else None
        out["first_month"] = month_key(self.first_month) if self.first_month != NO_MONTH else None
        out["last_month"] = month_key(self.last_month) if self.last_month != NO_MONTH else None
        out["months"] = {month_key(m): v for m, v in sorted(self.months.items()) if v != 0.0}
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    @classmethod
    def from_dict(cls, customer_id: str, data: dict[str, Any]) -> CustomerAggregates:
        values: dict[str, Any] = {name: data[name] for name in ("country", *COUNT_FIELDS, *AMOUNT_FIELDS)}
        for name in TIME_FIELDS:
            values[name] = datetime.fromisoformat(data[name]) if data.get(name) else None
        values["first_month"] = month_of_key(data["first_month"]) if data.get("first_month") else NO_MONTH
        values["last_month"] = month_of_key(data["last_month"]) if data.get("last_month") else NO_MONTH
        values["months"] = {month_of_key(key): float(value) for key, value in data.get("months", {}).items()}
        return cls(customer_id=customer_id, **values)

    @classmethod
    def from_json(cls, customer_id: str, text: str) -> CustomerAggregates:
        return cls.from_dict(customer_id, orjson.loads(text))


def _add_month(aggregates: CustomerAggregates, month: int, amount: float) -> None:
    """Add spend to ``month`` in the window that ends with the latest active month."""
    if aggregates.first_month == NO_MONTH or month < aggregates.first_month:
        aggregates.first_month = month
    if month > aggregates.last_month:
        aggregates.last_month = month
        floor = month - MONTH_WINDOW
        aggregates.months = {m: v for m, v in aggregates.months.items() if m > floor}
    if month > aggregates.last_month - MONTH_WINDOW:
        aggregates.months[month] = aggregates.months.get(month, 0.0) + amount


def apply_line(
    aggregates: CustomerAggregates, line: InvoiceLine, membership: Membership, kind: LineKind | None = None
) -> LineKind:
    """Fold one customer line into its aggregates and say what it counted as: the reference fold.

    Lines with a price of zero or less are counted nowhere (customers and guests
    alike), as in the batch cleaning; guest lines are refused (they have no customer).
    """
    kind = kind or classify(line)
    if kind == "invalid_price":
        return kind
    if kind == "guest":
        raise ValueError("guest lines feed GuestStats, not customer aggregates")
    moment, amount, cid = line.invoice_date, line.amount, aggregates.customer_id
    aggregates.lines += 1
    if aggregates.first_seen is None or moment < aggregates.first_seen:
        aggregates.first_seen = moment
    if aggregates.last_seen is None or moment >= aggregates.last_seen:
        # The country of the latest line by event time (ties: the later one in order).
        aggregates.country = line.country
        aggregates.last_seen = moment
    if kind == "non_product":
        aggregates.non_product_lines += 1
        aggregates.non_product_amount += amount
        return kind
    _add_month(aggregates, month_number(moment), amount)
    if kind == "cancellation":
        aggregates.cancel_lines += 1
        aggregates.cancel_amount -= amount
        aggregates.cancel_invoices += membership.new_invoice(cid, line.invoice_no)
        return kind
    aggregates.purchase_lines += 1
    aggregates.units += line.quantity
    aggregates.gross_spend += amount
    aggregates.invoices += membership.new_invoice(cid, line.invoice_no)
    aggregates.products += membership.new_product(cid, line.stock_code)
    if aggregates.first_purchase is None or moment < aggregates.first_purchase:
        aggregates.first_purchase = moment
    if aggregates.last_purchase is None or moment > aggregates.last_purchase:
        aggregates.last_purchase = moment
    return kind


@dataclass
class GuestStats:
    """Lines without a customer id: counted for the shop's totals, never clustered."""

    lines: int = 0
    amount: float = 0.0
    invoices: int = 0


class Countries:
    """Country names as small integers, shared by the columns of one process."""

    def __init__(self) -> None:
        self.names: list[str] = [""]
        self._codes: dict[str, int] = {"": 0}

    def code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self.names)
            self.names.append(name)
        return code

    def codes(self, names: Iterable[str]) -> np.ndarray:
        """Codes of ``names``; new names get theirs in order of first appearance, as :meth:`code` gives them.

        Only the distinct names go through Python; the rest is one lookup per name in C.
        """
        names = list(names)
        for name in dict.fromkeys(names):
            if name not in self._codes:
                self.code(name)
        return np.fromiter(map(self._codes.__getitem__, names), dtype=np.int32, count=len(names))


class AggregateColumns:
    """Aggregates of many customers as numpy columns; row ``i`` is one customer (a slot).

    Fixed bytes per row whatever the history: 8 counts, 3 amounts, 4 times, 2 month
    numbers, a country code and :data:`MONTH_WINDOW` monthly sums, about 240 bytes.
    The monthly sums are a ring indexed by ``month % MONTH_WINDOW``.
    """

    lines: np.ndarray
    purchase_lines: np.ndarray
    cancel_lines: np.ndarray
    non_product_lines: np.ndarray
    units: np.ndarray
    invoices: np.ndarray
    cancel_invoices: np.ndarray
    products: np.ndarray
    gross_spend: np.ndarray
    cancel_amount: np.ndarray
    non_product_amount: np.ndarray
    first_seen: np.ndarray
    last_seen: np.ndarray
    first_purchase: np.ndarray
    last_purchase: np.ndarray
    first_month: np.ndarray
    last_month: np.ndarray
    country: np.ndarray
    months: np.ndarray
    # The monthly features (mean, std, trend) of each row as last computed, and for which month
    # (NO_MONTH: none, or the row changed since): a daily sweep re-scores every customer, and
    # within a month those three change only with the customer's own lines (shared.features.vector).
    monthly_month: np.ndarray
    monthly: np.ndarray

    def __init__(self, capacity: int = 0, countries: Countries | None = None) -> None:
        self.size = 0
        self.countries = countries or Countries()
        self._allocate(capacity)

    def _allocate(self, capacity: int) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, np.zeros(capacity, dtype=np.int64))
        for name in AMOUNT_FIELDS:
            setattr(self, name, np.zeros(capacity))
        for name in TIME_FIELDS:
            setattr(self, name, np.full(capacity, NO_TIME, dtype=np.int64))
        for name in MONTH_FIELDS:
            setattr(self, name, np.full(capacity, NO_MONTH, dtype=np.int64))
        self.country = np.zeros(capacity, dtype=np.int32)
        self.months = np.zeros((capacity, MONTH_WINDOW))
        self.monthly_month = np.full(capacity, NO_MONTH, dtype=np.int64)
        self.monthly = np.zeros((capacity, 3))

    def column_names(self) -> tuple[str, ...]:
        return (*COUNT_FIELDS, *AMOUNT_FIELDS, *TIME_FIELDS, *MONTH_FIELDS, "country", "months", *MONTHLY_CACHE)

    @property
    def capacity(self) -> int:
        return len(self.country)

    def append(self, n: int) -> np.ndarray:
        """Rows for ``n`` new (empty) customers; grows the arrays geometrically."""
        start, end = self.size, self.size + n
        if end > self.capacity:
            grown = AggregateColumns(max(end, 2 * self.capacity, 64), self.countries)
            for name in self.column_names():
                getattr(grown, name)[: self.size] = getattr(self, name)[: self.size]
            for name in self.column_names():
                setattr(self, name, getattr(grown, name))
        self.size = end
        return np.arange(start, end)

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (in that order), compacting: frees what a revoked partition held."""
        for name in self.column_names():
            setattr(self, name, getattr(self, name)[rows].copy())
        self.size = len(rows)

    # -- one row <-> one customer --------------------------------------------------------------
    def set_row(self, row: int, aggregates: CustomerAggregates) -> None:
        for name in (*COUNT_FIELDS, *AMOUNT_FIELDS):
            getattr(self, name)[row] = getattr(aggregates, name)
        for name in TIME_FIELDS:
            getattr(self, name)[row] = optional_micros(getattr(aggregates, name))
        self.first_month[row] = aggregates.first_month
        self.last_month[row] = aggregates.last_month
        self.country[row] = self.countries.code(aggregates.country)
        self.months[row] = 0.0
        for month, value in aggregates.months.items():
            self.months[row, month % MONTH_WINDOW] = value
        self.monthly_month[row] = NO_MONTH

    def get_row(self, row: int, customer_id: str) -> CustomerAggregates:
        values: dict[str, Any] = {name: int(getattr(self, name)[row]) for name in COUNT_FIELDS}
        values |= {name: float(getattr(self, name)[row]) for name in AMOUNT_FIELDS}
        values |= {name: optional_datetime(int(getattr(self, name)[row])) for name in TIME_FIELDS}
        last = int(self.last_month[row])
        months: dict[int, float] = {}
        if last != NO_MONTH:
            for month in range(last - MONTH_WINDOW + 1, last + 1):
                value = float(self.months[row, month % MONTH_WINDOW])
                if value != 0.0:
                    months[month] = value
        return CustomerAggregates(
            customer_id=customer_id,
            country=self.countries.names[int(self.country[row])],
            first_month=int(self.first_month[row]),
            last_month=last,
            months=months,
            **values,
        )

    def packed(self, rows: np.ndarray) -> list[dict[str, str]]:
        """The stored form of each of ``rows`` (:meth:`packed_columns`, one mapping per row)."""
        columns = self.packed_columns(rows)
        return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]

    def packed_columns(self, rows: np.ndarray) -> dict[str, list[str]]:
        """The stored form of ``rows``, field by field: :data:`PACKED_FIELDS` (:data:`PACKED`, base64), ``country``.

        Why packed: fixed bytes that numpy writes and reads for many customers at once
        (a million load in seconds), in fields of 64 characters, so a record stays a
        small listpack in Redis (``hash-max-listpack-value`` is 64 by default).
        """
        rows = np.asarray(rows, dtype=np.int64)
        record = np.zeros(len(rows), dtype=PACKED)
        for name in (*COUNT_FIELDS, *AMOUNT_FIELDS, *TIME_FIELDS, *MONTH_FIELDS):
            record[name] = getattr(self, name)[rows]
        record["months"] = self.months[rows]
        text = np.frombuffer(base64.b64encode(record.tobytes()), dtype=f"S{PIECE}")
        pieces = text.astype(f"U{PIECE}").reshape(len(rows), len(PACKED_FIELDS))
        names = self.countries.names
        columns = {name: pieces[:, index].tolist() for index, name in enumerate(PACKED_FIELDS)}
        return columns | {"country": [names[code] for code in self.country[rows].tolist()]}

    def load_packed(self, rows: np.ndarray, packed: bytes, countries: Sequence[str]) -> None:
        """Fill ``rows`` from their :data:`PACKED_FIELDS` texts, concatenated in row order, and countries."""
        record = np.frombuffer(base64.b64decode(packed), dtype=PACKED)
        for name in (*COUNT_FIELDS, *AMOUNT_FIELDS, *TIME_FIELDS, *MONTH_FIELDS):
            getattr(self, name)[rows] = record[name]
        self.months[rows] = record["months"]
        self.country[rows] = self.countries.codes(countries)
        self.monthly_month[rows] = NO_MONTH


PIECE = 64  # characters per packed field: the default hash-max-listpack-value
PACKED = np.dtype(
    [
        *((name, "<i8" if name == "units" else "<i4") for name in COUNT_FIELDS),
        *((name, "<f8") for name in AMOUNT_FIELDS),
        *((name, "<i8") for name in TIME_FIELDS),
        *((name, "<i2") for name in MONTH_FIELDS),
        ("months", "<f8", (MONTH_WINDOW,)),
    ]
)  # 192 bytes: 256 base64 characters, four fields
PACKED_FIELDS = tuple(f"a{i}" for i in range(PACKED.itemsize * 4 // 3 // PIECE))


def unpack(customer_id: str, fields: Mapping[str, str]) -> CustomerAggregates:
    """One customer's aggregates from its stored record fields (tools, API, tests)."""
    columns = AggregateColumns(1)
    columns.append(1)
    packed = "".join(fields[name] for name in PACKED_FIELDS).encode()
    columns.load_packed(np.zeros(1, dtype=np.int64), packed, [fields.get("country", "")])
    return columns.get_row(0, customer_id)


def single_row(aggregates: CustomerAggregates) -> AggregateColumns:
    """One customer as columns (how the one-customer feature function reuses the column-wise one)."""
    columns = AggregateColumns(1)
    columns.append(1)
    columns.set_row(0, aggregates)
    return columns


def to_micros_array(times: Iterable[datetime]) -> np.ndarray:
    return np.fromiter((to_micros(at) for at in times), dtype=np.int64)
