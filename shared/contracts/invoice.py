"""The invoice line: one row of Online Retail, typed, plus a stable event id."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GUEST_KEY_PREFIX = "guest:"


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


class InvoiceLine(BaseModel):
    """One invoice line as published on the invoices topic (JSON value, key = customer)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(min_length=1, description="content hash; equal ids are the same event")
    invoice_no: str = Field(min_length=1, description="6 digits; a leading 'C' marks a cancellation")
    stock_code: str = Field(min_length=1)
    description: str | None = None
    quantity: int
    invoice_date: datetime = Field(description="event time as in the source, no time zone")
    unit_price: float = Field(description="price per unit in pounds sterling")
    customer_id: str | None = Field(None, description="None for guest checkouts")
    country: str

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
        return self.customer_id if self.customer_id is not None else GUEST_KEY_PREFIX + self.invoice_no
