"""Raw row (canonical column -> text) to a valid invoice line, or a :class:`RecordError`.

Why not pydantic per row: the replay validates half a million rows and pydantic
validation would cost as much as sending them. :func:`parse_row` checks and parses
with plain Python and serialises with pydantic-core's own JSON encoder, giving
byte-for-byte the JSON of ``InvoiceLine.create(...).model_dump_json()`` (a test
proves it on every row of the real file); :func:`validate_row` is the typed API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import pydantic_core

from shared.contracts.invoice import (
    LIMITS,
    InvoiceLine,
    Limits,
    check_price,
    check_quantity,
    check_text,
    check_time,
    event_id_of,
    partition_key,
)
from shared.exceptions import InvalidNumberError, InvalidTimestampError, MissingFieldError

REQUIRED = ("invoice_no", "stock_code", "quantity", "invoice_date", "unit_price", "country")
FALLBACK_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M")
_INTEGRAL_ID = re.compile(r"(\d+)\.0*")

Raw = Mapping[str, str | None]


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
        return partition_key(self.fields["customer_id"], self.fields["invoice_no"])

    def to_json(self) -> bytes:
        """Identical bytes to ``InvoiceLine.model_dump_json()`` for the same fields."""
        return pydantic_core.to_json(self.fields)


def parse_row(raw: Raw, limits: Limits = LIMITS) -> ParsedLine:
    """Validate and parse one row; raise a :class:`RecordError` subclass naming the field."""
    invoice_no, stock_code, quantity_text, date_text, price_text, country = [
        required(name, raw.get(name)) for name in REQUIRED
    ]
    description = raw.get("description") or None
    quantity = parse_quantity(quantity_text, limits)
    invoice_date = parse_timestamp(date_text, limits)
    unit_price = parse_price(price_text, limits)
    customer_id = normalise_customer_id(raw.get("customer_id"))
    for name, value in (("invoice_no", invoice_no), ("stock_code", stock_code), ("country", country)):
        check_text(name, value, limits)
    if description is not None:
        check_text("description", description, limits, required=False)
    if customer_id is not None:
        check_text("customer_id", customer_id, limits)
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


def required(name: str, value: str | None) -> str:
    """``value`` unless it is absent or blank (:class:`MissingFieldError`)."""
    if value is None or not value.strip():
        raise MissingFieldError(f"{name} is missing", field=name)
    return value


def validate_row(raw: Raw, limits: Limits = LIMITS) -> InvoiceLine:
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
    return check_quantity(quantity, limits)


def parse_price(text: str, limits: Limits) -> float:
    """A finite unit price in ``[0, max_price]``; zero is valid here (free items are filtered later)."""
    try:
        price = float(text)
    except ValueError:
        raise InvalidNumberError(f"unit_price {text!r} is not a number", field="unit_price") from None
    return check_price(price, limits)


def parse_timestamp(text: str, limits: Limits = LIMITS) -> datetime:
    """ISO 8601 (``2010-12-01 08:26:00``) or the UCI spreadsheet's ``12/1/2010 8:26``; no time zone."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        at = _fallback_timestamp(text.strip())
    return check_time(at, limits)


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
