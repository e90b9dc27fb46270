"""A chunk of raw rows -> the contract's verdict, keys, partitions and wire bytes, column by column.

Why: judging, hashing and serialising half a million rows one dict at a time cost
the replay more CPU than sending them. Values repeat heavily (38 countries, a few
thousand products and prices, one timestamp per invoice), so each column is
factorised and every *distinct* value is checked and serialised once, with the
same functions as :func:`producer.validation.parse_row`; rows are then put
together from those pieces. Only the event id, a hash of the whole row, is
computed per row.

A row with any value that fails is not judged here: the caller hands it to
:func:`parse_row`, which raises the same error as ever (the first failing field in
its order), so dead letters do not change. A valid row's value is byte for byte
``ParsedLine.to_json()`` and its key ``ParsedLine.partition_key`` (a test compares
them on every row of the real file and on a corpus of bad values).
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pydantic_core

from producer.validation import (
    Limits,
    normalise_customer_id,
    parse_price,
    parse_quantity,
    parse_timestamp,
    required,
)
from shared.contracts.invoice import GUEST_KEY_PREFIX, check_text
from shared.exceptions import RecordError
from shared.partitioner import KeyPartitioner

EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_INVALID = object()  # a distinct value that fails its check
_SEPARATOR = b"\x1f"  # between the fields of an event id's canonical text (see event_id_of)


@dataclass(frozen=True)
class CheckedRows:
    """The valid rows of one chunk, in chunk order: ``valid`` marks them among all rows."""

    valid: np.ndarray  # bool, one per row of the chunk
    times_us: np.ndarray  # int64 event time in microseconds since 1970 (naive, as in the source)
    keys: list[bytes]
    values: list[bytes]
    partitions: list[int]
    guests: list[bool]


def to_microseconds(at: datetime) -> int:
    """A naive event time as an integer that orders and subtracts exactly like the datetime."""
    return (at - EPOCH) // _MICROSECOND


def check_rows(chunk: pd.DataFrame, limits: Limits, partitioner: KeyPartitioner) -> CheckedRows:
    """Judge and serialise the rows of ``chunk`` (canonical columns of raw text or None)."""
    invoice = _Distinct(chunk["invoice_no"], lambda text: _required_text("invoice_no", text, limits))
    stock = _Distinct(chunk["stock_code"], lambda text: _required_text("stock_code", text, limits))
    description = _Distinct(
        chunk["description"], lambda text: check_text("description", text, limits, required=False), absent=None
    )
    quantity = _Distinct(chunk["quantity"], lambda text: parse_quantity(required("quantity", text), limits))
    date = _Distinct(chunk["invoice_date"], lambda text: parse_timestamp(required("invoice_date", text), limits))
    price = _Distinct(chunk["unit_price"], lambda text: parse_price(required("unit_price", text), limits))
    customer = _Distinct(chunk["customer_id"], lambda text: _customer(text, limits), absent=None)
    country = _Distinct(chunk["country"], lambda text: _required_text("country", text, limits))
    columns = (invoice, stock, description, quantity, date, price, customer, country)

    valid = np.logical_and.reduce([column.valid() for column in columns])
    rows = np.flatnonzero(valid)
    for column in columns:
        column.keep(rows)

    canonical = [
        invoice.pieces(str.encode),
        stock.pieces(str.encode),
        description.pieces(lambda text: b"" if text is None else text.encode()),
        quantity.pieces(lambda number: str(number).encode()),
        date.pieces(lambda at: at.isoformat().encode()),
        price.pieces(lambda number: repr(float(number)).encode()),
        customer.pieces(lambda text: b"" if text is None else text.encode()),
        country.pieces(str.encode),
    ]
    names = ("invoice_no", "stock_code", "description", "quantity", "invoice_date", "unit_price", "customer_id")
    json = [_json_pieces(name, column) for name, column in zip(names, columns[:-1], strict=True)]
    json.append(country.pieces(lambda text: b'"country":' + pydantic_core.to_json(text) + b"}"))
    values = _values(canonical, json)

    guests = customer.pieces(lambda text: text is None).astype(bool)
    guest_keys = invoice.pieces(lambda text: (GUEST_KEY_PREFIX + text).encode())
    customer_keys = customer.pieces(lambda text: b"" if text is None else text.encode())
    keys = np.where(guests, guest_keys, customer_keys)
    return CheckedRows(
        valid=valid,
        times_us=date.pieces(to_microseconds).astype(np.int64),
        keys=keys.tolist(),
        values=values,
        partitions=_partitions(keys, partitioner),
        guests=guests.tolist(),
    )


def _required_text(name: str, text: str, limits: Limits) -> str:
    return check_text(name, required(name, text), limits)


def _customer(text: str, limits: Limits) -> str | None:
    customer_id = normalise_customer_id(text)
    return None if customer_id is None else check_text("customer_id", customer_id, limits)


def _partitions(keys: np.ndarray, partitioner: KeyPartitioner) -> list[int]:
    """Each key's partition, hashed once per distinct key."""
    codes, distinct = pd.factorize(keys)
    return np.array([partitioner(key) for key in distinct], dtype=np.int64)[codes].tolist()


def _json_pieces(name: str, column: _Distinct) -> np.ndarray:
    prefix = b'"' + name.encode() + b'":'
    return column.pieces(lambda value: prefix + pydantic_core.to_json(value) + b",")


def _values(canonical: list[np.ndarray], json: list[np.ndarray]) -> list[bytes]:
    """Each row's JSON: its event id (a hash of the canonical fields) first, then the fields' pieces."""
    blake2b, hexlify, join = hashlib.blake2b, binascii.hexlify, _SEPARATOR.join
    return [
        b"".join((b'{"event_id":"', hexlify(blake2b(join(fields), digest_size=16).digest()), b'",', *pieces))
        for fields, pieces in zip(zip(*canonical, strict=True), zip(*json, strict=True), strict=True)
    ]


class _Distinct:
    """One column factorised: each distinct value parsed once, rows pointing at their value's result.

    The result for an absent cell (None) is kept last, so that pandas' code -1 for
    it indexes it directly.
    """

    def __init__(self, cells: pd.Series, parse: Callable[[str], Any], absent: Any = _INVALID) -> None:
        codes, uniques = pd.factorize(cells.to_numpy(dtype=object))
        self.codes = codes
        self.parsed = np.empty(len(uniques) + 1, dtype=object)
        self.parsed[:-1] = [_try(parse, text) for text in uniques]
        self.parsed[-1] = absent

    def valid(self) -> np.ndarray:
        """Per row: did its value pass?"""
        passed = np.fromiter((value is not _INVALID for value in self.parsed), dtype=bool, count=len(self.parsed))
        return passed[self.codes]

    def keep(self, rows: np.ndarray) -> None:
        """From now on, stand for these rows only (the valid ones)."""
        self.codes = self.codes[rows]

    def pieces(self, render: Callable[[Any], Any]) -> np.ndarray:
        """``render`` of each kept row's parsed value, computed once per distinct valid value."""
        seen = np.zeros(len(self.parsed), dtype=bool)
        seen[self.codes] = True
        used = np.flatnonzero(seen)
        rendered = np.empty(len(self.parsed), dtype=object)
        rendered[used] = [render(self.parsed[code]) for code in used]
        return rendered[self.codes]


def _try(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except RecordError:
        return _INVALID
