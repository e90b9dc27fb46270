"""The invoice line: one row of Online Retail, typed and bounded, plus a stable event id.

Why bounds in the contract: a value that parses but is absurd (a ``NaN`` price, a
40-digit quantity, year 9999, a time zone, an empty id) must be refused at the
edge, where it can be dead-lettered with its reason, instead of poisoning a
customer's aggregates or the model statistics every worker reads. The replay
producer validates rows against :data:`LIMITS` and the worker decodes messages
against the same :data:`LIMITS` (:func:`check_fields`); both refuse exactly what
:class:`InvoiceLine` refuses (a test runs a corpus of poison values through all
three).

>>> LIMITS.max_price, LIMITS.max_quantity
(100000.0, 1000000)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.exceptions import InvalidNumberError, InvalidTimestampError, MissingFieldError, OutOfRangeError

GUEST_KEY_PREFIX = "guest:"


@dataclass(frozen=True)
class Limits:
    """Bounds beyond which a value is a data error, not a big sale. Documented in the README (contract)."""

    max_price: float = 100_000.0
    max_quantity: int = 1_000_000
    earliest: datetime = datetime(2000, 1, 1)
    latest: datetime = datetime(2100, 1, 1)
    max_id_length: int = 64
    max_text_length: int = 512


LIMITS = Limits()


def event_id_of(
    invoice_no: str,
    stock_code: str,
    description: str | None,
    quantity: int,
    invoice_date: datetime,
    unit_price: float,
    customer_id: str | None,
    country: str,
) -> str:
    """A content hash of the eight fields.

    Why content and not position: the same line sent twice (a producer retry, a
    restarted replay) gets the same id wherever it comes from, so consumers can
    drop it. Identical source lines are by the same rule one event: this is the
    stream-side twin of the batch rule "exact duplicate rows are dropped".
    """
    canonical = "\x1f".join(
        [
            invoice_no,
            stock_code,
            description or "",
            str(quantity),
            invoice_date.isoformat(),
            repr(float(unit_price)),
            customer_id or "",
            country,
        ]
    )
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


def check_price(price: float, limits: Limits = LIMITS) -> float:
    """A finite unit price in ``[0, max_price]``; zero is valid here (free items are a cleaning rule)."""
    if not math.isfinite(price):
        raise InvalidNumberError(f"unit_price {price!r} is not finite", field="unit_price")
    if price < 0:
        raise OutOfRangeError(f"unit_price {price} is negative", field="unit_price")
    if price > limits.max_price:
        raise OutOfRangeError(f"unit_price {price} exceeds {limits.max_price:g}", field="unit_price")
    return price


def check_quantity(quantity: int, limits: Limits = LIMITS) -> int:
    """A whole quantity with ``|quantity| <= max_quantity`` (returns are negative)."""
    if abs(quantity) > limits.max_quantity:
        raise OutOfRangeError(f"|quantity| {quantity} exceeds {limits.max_quantity}", field="quantity")
    return quantity


def check_time(at: datetime, limits: Limits = LIMITS) -> datetime:
    """A naive (local, as in the source) event time in ``[earliest, latest)``."""
    if at.tzinfo is not None:
        raise InvalidTimestampError(
            f"invoice_date {at.isoformat()} has a time zone; event times are local", "invoice_date"
        )
    if not limits.earliest <= at < limits.latest:
        raise OutOfRangeError(
            f"invoice_date {at.isoformat()} is outside [{limits.earliest:%Y-%m-%d}, {limits.latest:%Y-%m-%d})",
            field="invoice_date",
        )
    return at


def check_text(name: str, value: str, limits: Limits = LIMITS, required: bool = True) -> str:
    """An identifier or label: not blank when required, at most the documented length."""
    maximum = limits.max_text_length if name in ("description", "country") else limits.max_id_length
    if required and not value.strip():
        raise MissingFieldError(f"{name} is empty", field=name)
    if len(value) > maximum:
        raise OutOfRangeError(f"{name} is {len(value)} characters long; at most {maximum}", field=name)
    return value


def check_fields(fields: dict[str, Any], limits: Limits = LIMITS) -> dict[str, Any]:
    """Check the bounds of already-typed fields (the keys of :class:`InvoiceLine`); return them.

    The worker's fast decode calls this on each decoded message; the producer on each row.
    """
    for name in ("event_id", "invoice_no", "stock_code", "country"):
        check_text(name, fields[name], limits)
    if fields.get("description") is not None:
        check_text("description", fields["description"], limits, required=False)
    if fields.get("customer_id") is not None:
        check_text("customer_id", fields["customer_id"], limits)
    check_quantity(fields["quantity"], limits)
    check_price(fields["unit_price"], limits)
    check_time(fields["invoice_date"], limits)
    return fields


class InvoiceLine(BaseModel):
    """One invoice line as published on the invoices topic (JSON value, key = customer)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, strict=False)

    event_id: str = Field(
        min_length=1, max_length=LIMITS.max_id_length, description="content hash; equal ids are one event"
    )
    invoice_no: str = Field(
        min_length=1, max_length=LIMITS.max_id_length, description="a leading 'C' marks a cancellation"
    )
    stock_code: str = Field(min_length=1, max_length=LIMITS.max_id_length)
    description: str | None = Field(None, max_length=LIMITS.max_text_length)
    quantity: int = Field(ge=-LIMITS.max_quantity, le=LIMITS.max_quantity)
    invoice_date: datetime = Field(description="event time as in the source, no time zone, in [2000, 2100)")
    unit_price: float = Field(ge=0.0, le=LIMITS.max_price, description="price per unit in pounds sterling")
    customer_id: str | None = Field(None, min_length=1, max_length=LIMITS.max_id_length, description="None: guest")
    country: str = Field(min_length=1, max_length=LIMITS.max_text_length)

    @field_validator("invoice_date", mode="before")
    @classmethod
    def _text_only(cls, value: object) -> object:
        # An epoch number is not an event time this contract knows: pydantic would read it as seconds.
        if isinstance(value, int | float):
            raise ValueError("invoice_date must be an ISO date-time string, not a number")
        return value

    @field_validator("invoice_date")
    @classmethod
    def _naive_and_in_range(cls, value: datetime) -> datetime:
        try:
            return check_time(value)
        except (InvalidTimestampError, OutOfRangeError) as exc:
            raise ValueError(str(exc)) from None

    @field_validator("event_id", "invoice_no", "stock_code", "country", "customer_id")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @classmethod
    def create(cls, **fields: Any) -> InvoiceLine:
        """Build a line from its eight fields (:func:`event_id_of`'s arguments) and derive its event id."""
        return cls(event_id=event_id_of(**fields), **fields)

    @property
    def is_cancellation(self) -> bool:
        return self.invoice_no.startswith("C")

    @property
    def is_guest(self) -> bool:
        return self.customer_id is None

    @property
    def amount(self) -> float:
        return self.quantity * self.unit_price

    @property
    def partition_key(self) -> str:
        """Customer id; guests are keyed by invoice so each guest basket stays together."""
        return partition_key(self.customer_id, self.invoice_no)


def partition_key(customer_id: str | None, invoice_no: str) -> str:
    """The message key a line is sent under: the customer, or ``guest:<invoice>`` for a guest basket."""
    return customer_id if customer_id is not None else GUEST_KEY_PREFIX + invoice_no
