"""Kafka record values -> invoice lines as columns, or the precise reason a record is unusable.

Why not a pydantic object per record: decoding is the largest per-record cost the
worker has. msgspec checks types, lengths and bounds of each value against a struct
that mirrors the contract's limits (:data:`shared.contracts.invoice.LIMITS`) in C;
what a struct cannot check without a regular expression per field (blank ids, the
shape of the event time) is checked for the whole batch at once with numpy, and the
event times are parsed by numpy at once too. The fast path accepts a subset of what
the contract accepts (naive ``20YY-MM-DDTHH:MM:SS[.ffffff]`` times, exact JSON
types); anything else goes through the contract itself (:class:`InvoiceLine`), so
the worker accepts exactly what the contract accepts, and a refusal carries the
contract's message (``tests/test_decode.py`` runs a corpus through both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter, itemgetter
from typing import Annotated

import msgspec
import numpy as np
from pydantic import ValidationError

from shared.contracts.invoice import LIMITS, InvoiceLine
from shared.exceptions import DecodeError, RecordError
from shared.state.dedup import entry_columns

_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=LIMITS.max_id_length)]
_TEXT = Annotated[str, msgspec.Meta(min_length=1, max_length=LIMITS.max_text_length)]
_TIME = Annotated[str, msgspec.Meta(min_length=19, max_length=26)]


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
_REQUIRED_TEXT = ("event_id", "invoice_no", "stock_code", "country")
_COLUMNS = (*_REQUIRED_TEXT, "quantity", "invoice_date", "unit_price", "customer_id")

# The fast path's event-time shape: the fixed characters of ``20YY-MM-DDTHH:MM:SS.ffffff`` and where they are
# (every other position up to the text's length is a digit).
_SEPARATOR_AT = np.array([0, 1, 4, 7, 10, 13, 16])
_SEPARATOR_CHARS = np.array([ord(c) for c in "20--T::"], dtype=np.uint32)
_SEPARATOR = np.isin(np.arange(26), np.append(_SEPARATOR_AT[2:], 19))


@dataclass
class Records:
    """Decoded invoice lines as aligned columns (one entry per record).

    The text columns are object arrays, not lists: a step takes and reorders its
    records several times, and numpy moves references without touching the strings.
    """

    partition: np.ndarray  # int64
    offset: np.ndarray  # int64
    time: np.ndarray  # event time, µs since 1970 (int64)
    quantity: np.ndarray  # int64
    price: np.ndarray  # float64
    invoice_no: np.ndarray  # str (object)
    stock_code: np.ndarray  # str (object)
    customer_id: np.ndarray  # str, or None for a guest line (object)
    country: np.ndarray  # str (object)
    seen_bucket: np.ndarray  # the event id's dedup set (int64), see shared.state.dedup
    seen_member: np.ndarray  # the event id's dedup digest (str, object): all the worker needs of the event id

    def __len__(self) -> int:
        return len(self.offset)

    def take(self, index: np.ndarray | slice) -> Records:
        """The records at ``index`` (integer array, in that order; a slice gives views)."""
        return Records(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def empty(cls) -> Records:
        ints, texts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
        return cls(ints, ints, ints, ints, np.zeros(0), texts, texts, texts, texts, ints, texts)

    @classmethod
    def concat(cls, parts: Sequence[Records]) -> Records:
        parts = [part for part in parts if len(part)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(**{f.name: np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(cls)})


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


def _blank(column: Sequence[str | None]) -> np.ndarray:
    """Which values are only whitespace (one C pass when none is, the common case)."""
    if not any(map(str.isspace, filter(None, column))):
        return np.zeros(len(column), dtype=bool)
    return np.array([value is not None and value.isspace() for value in column], dtype=bool)


def _time_shaped(texts: list[str]) -> np.ndarray:
    """Which texts have the fast path's shape: ``20YY-MM-DDTHH:MM:SS`` and an optional 1-6 digit fraction."""
    array = np.array(texts, dtype="U26")  # the struct bounds them to 19-26 characters
    chars = array.view(np.uint32).reshape(len(texts), 26)
    length = np.char.str_len(array)
    digit = (chars >= ord("0")) & (chars <= ord("9"))
    beyond = np.arange(26) >= length[:, None]  # padding after the text
    ok = (length == 19) | ((length >= 21) & (chars[:, 19] == ord(".")))
    ok &= (digit | _SEPARATOR | beyond).all(axis=1)
    return ok & (chars[:, _SEPARATOR_AT] == _SEPARATOR_CHARS).all(axis=1)


def _columns(lines: list[_Line]) -> dict[str, list]:
    return {name: list(map(attrgetter(name), lines)) for name in _COLUMNS}


def objects(values: list) -> np.ndarray:
    """A one-dimensional object array of ``values``."""
    return np.fromiter(values, dtype=object, count=len(values))


def _misses(columns: dict[str, list]) -> np.ndarray:
    """Lines the fast path cannot take as they are (the contract judges them)."""
    miss = ~_time_shaped(columns["invoice_date"])
    for name in (*_REQUIRED_TEXT, "customer_id"):
        miss |= _blank(columns[name])
    return miss


def decode(
    partition: int, offsets: Sequence[int], keys: Sequence[bytes | None], values: Sequence[bytes | None]
) -> tuple[Records, list[Refused]]:
    """Decode one partition's records (in offset order); refused ones are returned apart."""
    lines: list[_Line] = []
    kept: list[int] = []
    refused: list[Refused] = []
    judged: list[int] = []  # by the contract: the fast path refused them or could not check them

    def refuse(index: int, error: RecordError) -> None:
        refused.append(Refused(partition, offsets[index], keys[index], values[index], error))

    try:  # the usual case, every value fits the fast path: one C loop
        lines = list(map(_fast, values))  # type: ignore[arg-type]  # a None value raises TypeError
        kept = list(range(len(values)))
    except (msgspec.ValidationError, msgspec.DecodeError, TypeError):
        lines = []
        for index, value in enumerate(values):
            if not value:
                refuse(index, DecodeError("empty message value"))
                continue
            try:
                lines.append(_fast(value))
                kept.append(index)
            except (msgspec.ValidationError, msgspec.DecodeError):
                judged.append(index)
    columns = _columns(lines)
    miss = _misses(columns) if lines else np.zeros(0, dtype=bool)
    if judged or miss.any():
        judged += [kept[position] for position in np.flatnonzero(miss).tolist()]
        fast = [(index, line) for index, line, out in zip(kept, lines, miss.tolist(), strict=True) if not out]
        for index in judged:
            try:
                fast.append((index, _through_contract(values[index] or b"")))
            except RecordError as error:
                refuse(index, error)
        fast.sort(key=itemgetter(0))
        kept, lines = [index for index, _ in fast], [line for _, line in fast]
        columns = _columns(lines)
    micros, parsed = _parse_times(columns["invoice_date"])
    if not parsed.all():
        for position in np.flatnonzero(~parsed).tolist():
            text = columns["invoice_date"][position]
            refuse(kept[position], DecodeError(f"invoice_date {text!r} is not a valid date and time", "invoice_date"))
        good = parsed.tolist()
        columns = {name: [v for v, ok in zip(column, good, strict=True) if ok] for name, column in columns.items()}
        kept = [index for index, ok in zip(kept, good, strict=True) if ok]
        micros = micros[parsed]
    refused.sort(key=attrgetter("offset"))
    buckets, members = entry_columns(columns["event_id"])
    records = Records(
        partition=np.full(len(kept), partition, dtype=np.int64),
        offset=np.array([offsets[index] for index in kept], dtype=np.int64),
        time=micros,
        quantity=np.array(columns["quantity"], dtype=np.int64),
        price=np.array(columns["unit_price"], dtype=float),
        invoice_no=objects(columns["invoice_no"]),
        stock_code=objects(columns["stock_code"]),
        customer_id=objects(columns["customer_id"]),
        country=objects(columns["country"]),
        seen_bucket=buckets.astype(np.int64),
        seen_member=objects(members),
    )
    return records, refused
