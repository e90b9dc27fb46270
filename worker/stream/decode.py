"""Kafka record values -> invoice lines as columns, or the precise reason a record is unusable.

Why not a pydantic object per record: decoding is the largest per-record cost the
worker has. msgspec checks the JSON against a struct that mirrors the contract's
bounds (:data:`shared.contracts.invoice.LIMITS`) in C, and the event times of a
whole batch are parsed by numpy at once. The fast path accepts a subset of what
the contract accepts (naive ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` times, exact JSON
types); anything else goes through the contract itself (:class:`InvoiceLine`), so
the worker accepts exactly what the contract accepts, and a refusal carries the
contract's message. A test runs a corpus of poison values through both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Annotated

import msgspec
import numpy as np
from pydantic import ValidationError

from shared.contracts.invoice import LIMITS, InvoiceLine
from shared.exceptions import DecodeError, RecordError

_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=LIMITS.max_id_length, pattern=r"\S")]
_TEXT = Annotated[str, msgspec.Meta(min_length=1, max_length=LIMITS.max_text_length, pattern=r"\S")]
_TIME = Annotated[str, msgspec.Meta(pattern=r"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?$")]


class _Line(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    event_id: _ID
    invoice_no: _ID
    stock_code: _ID
    quantity: Annotated[int, msgspec.Meta(ge=-LIMITS.max_quantity, le=LIMITS.max_quantity)]
    invoice_date: _TIME
    unit_price: Annotated[float, msgspec.Meta(ge=0.0, le=LIMITS.max_price)]
    country: _TEXT
    description: Annotated[str, msgspec.Meta(max_length=LIMITS.max_text_length)] | None = None
    customer_id: _ID | None = None


_fast = msgspec.json.Decoder(_Line).decode
_contract = InvoiceLine.__pydantic_validator__.validate_json


@dataclass
class Records:
    """Decoded invoice lines as aligned columns (one entry per record)."""

    partition: np.ndarray  # int64
    offset: np.ndarray  # int64
    time: np.ndarray  # event time, µs since 1970 (int64)
    quantity: np.ndarray  # int64
    price: np.ndarray  # float64
    event_id: list[str]
    invoice_no: list[str]
    stock_code: list[str]
    customer_id: list[str | None]
    country: list[str]

    def __len__(self) -> int:
        return len(self.offset)

    def take(self, index: np.ndarray) -> Records:
        """The records at ``index`` (an integer array), in that order."""
        out = {}
        positions = index.tolist()
        for f in fields(self):
            column = getattr(self, f.name)
            out[f.name] = column[index] if isinstance(column, np.ndarray) else [column[i] for i in positions]
        return Records(**out)

    @classmethod
    def empty(cls) -> Records:
        ints = np.zeros(0, dtype=np.int64)
        return cls(ints, ints, ints, ints, np.zeros(0), [], [], [], [], [])

    @classmethod
    def concat(cls, parts: Sequence[Records]) -> Records:
        parts = [part for part in parts if len(part)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        out = {}
        for f in fields(cls):
            columns = [getattr(part, f.name) for part in parts]
            if isinstance(columns[0], np.ndarray):
                out[f.name] = np.concatenate(columns)
            else:
                out[f.name] = [value for column in columns for value in column]
        return cls(**out)


@dataclass(frozen=True)
class Refused:
    """A record that cannot be applied, and why; it goes to the dead-letter topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: RecordError
    stage: str = "decode"


def _through_contract(value: bytes) -> _Line:
    """The contract's verdict on a value the fast path refused: its fields, or a :class:`DecodeError`."""
    try:
        line = _contract(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise DecodeError(f"{exc.error_count()} invalid field(s); first: {field}: {first['msg']}", field) from None
    return _Line(
        event_id=line.event_id,
        invoice_no=line.invoice_no,
        stock_code=line.stock_code,
        quantity=line.quantity,
        invoice_date=line.invoice_date.isoformat(),
        unit_price=line.unit_price,
        country=line.country,
        description=line.description,
        customer_id=line.customer_id,
    )


def _parse_times(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """µs of each ISO text, and which ones parsed (numpy refuses a whole array for one bad date)."""
    try:
        return np.array(texts, dtype="datetime64[us]").astype(np.int64), np.ones(len(texts), dtype=bool)
    except ValueError:
        micros = np.zeros(len(texts), dtype=np.int64)
        good = np.zeros(len(texts), dtype=bool)
        for index, text in enumerate(texts):
            try:
                micros[index] = np.datetime64(text, "us").astype(np.int64)
                good[index] = True
            except ValueError:
                continue
        return micros, good


def decode(
    partition: int, offsets: Sequence[int], keys: Sequence[bytes | None], values: Sequence[bytes | None]
) -> tuple[Records, list[Refused]]:
    """Decode one partition's records (in offset order); refused ones are returned apart."""
    lines: list[_Line] = []
    kept: list[int] = []
    refused: list[Refused] = []
    for index, value in enumerate(values):
        try:
            if not value:
                raise DecodeError("empty message value")
            try:
                line = _fast(value)
            except (msgspec.ValidationError, msgspec.DecodeError):
                line = _through_contract(value)
        except RecordError as error:
            refused.append(Refused(partition, offsets[index], keys[index], value, error))
            continue
        lines.append(line)
        kept.append(index)
    micros, parsed = _parse_times([line.invoice_date for line in lines])
    if not parsed.all():
        for position in np.flatnonzero(~parsed).tolist():
            index = kept[position]
            message = f"invoice_date {lines[position].invoice_date!r} is not a valid date and time"
            refused.append(
                Refused(partition, offsets[index], keys[index], values[index], DecodeError(message, "invoice_date"))
            )
        lines = [line for line, ok in zip(lines, parsed.tolist(), strict=True) if ok]
        kept = [index for index, ok in zip(kept, parsed.tolist(), strict=True) if ok]
        micros = micros[parsed]
    records = Records(
        partition=np.full(len(lines), partition, dtype=np.int64),
        offset=np.array([offsets[index] for index in kept], dtype=np.int64),
        time=micros,
        quantity=np.array([line.quantity for line in lines], dtype=np.int64),
        price=np.array([line.unit_price for line in lines], dtype=float),
        event_id=[line.event_id for line in lines],
        invoice_no=[line.invoice_no for line in lines],
        stock_code=[line.stock_code for line in lines],
        customer_id=[line.customer_id for line in lines],
        country=[line.country for line in lines],
    )
    return records, refused
