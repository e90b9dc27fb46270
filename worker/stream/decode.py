"""Turn a Kafka record into an invoice line, or say precisely why not."""

from __future__ import annotations

from pydantic import ValidationError

from shared.contracts.invoice import InvoiceLine
from shared.exceptions import DecodeError

_validate_json = InvoiceLine.__pydantic_validator__.validate_json


def decode_line(value: bytes | None) -> InvoiceLine:
    """Parse and validate a message value; raise :class:`DecodeError` for anything unusable."""
    if not value:
        raise DecodeError("empty message value")
    try:
        return _validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise DecodeError(f"{exc.error_count()} invalid field(s); first: {field}: {first['msg']}", field) from None
