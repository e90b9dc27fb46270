"""Raw row (canonical column -> text) to a valid invoice line, or a :class:`RecordError`.

Why not pydantic per row: the replay validates half a million rows and pydantic
validation would cost as much as sending them. :func:`parse_row` checks and parses
with plain Python and serialises with pydantic-core's own JSON encoder, giving
byte-for-byte the JSON of ``InvoiceLine.create(...).model_dump_json()`` (a test
proves it on every row of the real file); :func:`validate_row` is the typed API.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import pydantic_core

from shared.contracts.invoice import GUEST_KEY_PREFIX, InvoiceLine, event_id_of
from shared.exceptions import InvalidNumberError, InvalidTimestampError, MissingFieldError, OutOfRangeError

REQUIRED = ("invoice_no", "stock_code", "quantity", "invoice_date", "unit_price", "country")
FALLBACK_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M")
_INTEGRAL_ID = re.compile(r"(\d+)\.0*")

Raw = Mapping[str, str | None]


@dataclass(frozen=True)
class Limits:
    """Bounds beyond which a value is treated as a data error, not a big sale."""

    max_price: float = 100_000.0
    max_quantity: int = 1_000_000


class ParsedLine(NamedTuple):
    """A validated line: ``fields`` are :class:`InvoiceLine`'s fields, in its order, event id first."""

    fields: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.fields["event_id"]

    @property
    def invoice_date(self) -> datetime:
        return self.fields["invoice_date"]

    @property
    def customer_id(self) -> str | None:
        return self.fields["customer_id"]

    @property
    def partition_key(self) -> str:
        """Same rule as :attr:`InvoiceLine.partition_key`."""
        customer_id = self.fields["customer_id"]
        return customer_id if customer_id is not None else GUEST_KEY_PREFIX + self.fields["invoice_no"]

    def to_json(self) -> bytes:
        """Identical bytes to ``InvoiceLine.model_dump_json()`` for the same fields."""
        return pydantic_core.to_json(self.fields)


def parse_row(raw: Raw, limits: Limits = Limits()) -> ParsedLine:
    """Validate and parse one row; raise a :class:`RecordError` subclass naming the field."""
    invoice_no, stock_code, quantity_text, date_text, price_text, country = [_required(raw, name) for name in REQUIRED]
    description = raw.get("description") or None
    quantity = parse_quantity(quantity_text, limits)
    invoice_date = parse_timestamp(date_text)
    unit_price = parse_price(price_text, limits)
    customer_id = normalise_customer_id(raw.get("customer_id"))
    event_id = event_id_of(
        invoice_no, stock_code, description, quantity, invoice_date, unit_price, customer_id, country
    )
    return ParsedLine(
        {
            "event_id": event_id,
            "invoice_no": invoice_no,
            "stock_code": stock_code,
            "description": description,
            "quantity": quantity,
            "invoice_date": invoice_date,
            "unit_price": unit_price,
            "customer_id": customer_id,
            "country": country,
        }
    )


def _required(raw: Raw, name: str) -> str:
    value = raw.get(name)
    if value is None or not value.strip():
        raise MissingFieldError(f"{name} is missing", field=name)
    return value


def validate_row(raw: Raw, limits: Limits = Limits()) -> InvoiceLine:
    """Like :func:`parse_row` but returns the contract model (slower; for APIs and tests)."""
    fields = dict(parse_row(raw, limits).fields)
    del fields["event_id"]
    return InvoiceLine.create(**fields)


def parse_quantity(text: str, limits: Limits) -> int:
    """An integer quantity; ``"6.0"`` (spreadsheet exports) is accepted as 6."""
    try:
        quantity = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise InvalidNumberError(f"quantity {text!r} is not a number", field="quantity") from None
        if not number.is_integer():
            raise InvalidNumberError(f"quantity {text!r} is not a whole number", field="quantity") from None
        quantity = int(number)
    if abs(quantity) > limits.max_quantity:
        raise OutOfRangeError(f"|quantity| {quantity} exceeds {limits.max_quantity}", field="quantity")
    return quantity


def parse_price(text: str, limits: Limits) -> float:
    """A finite unit price in ``[0, max_price]``; zero is valid here (free items are filtered later)."""
    try:
        price = float(text)
    except ValueError:
        raise InvalidNumberError(f"unit_price {text!r} is not a number", field="unit_price") from None
    if not math.isfinite(price):
        raise InvalidNumberError(f"unit_price {text!r} is not finite", field="unit_price")
    if price < 0:
        raise OutOfRangeError(f"unit_price {price} is negative", field="unit_price")
    if price > limits.max_price:
        raise OutOfRangeError(f"unit_price {price} exceeds {limits.max_price}", field="unit_price")
    return price


def parse_timestamp(text: str) -> datetime:
    """ISO 8601 (``2010-12-01 08:26:00``) or the UCI spreadsheet's ``12/1/2010 8:26``; no time zone."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        at = _fallback_timestamp(text.strip())
    if at.tzinfo is not None:
        raise InvalidTimestampError(f"invoice_date {text!r} has a time zone; event times are local", "invoice_date")
    return at


def _fallback_timestamp(text: str) -> datetime:
    for pattern in FALLBACK_DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise InvalidTimestampError(f"invoice_date {text!r} is not a date and time", field="invoice_date")


def normalise_customer_id(text: str | None) -> str | None:
    """``"17850.0"`` (a float-typed export) -> ``"17850"``; empty -> ``None`` (guest)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = _INTEGRAL_ID.fullmatch(text)
    return match.group(1) if match else text
