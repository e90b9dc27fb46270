"""The worker's columnar decode accepts exactly what the contract accepts, with the same fields.

The fast path checks types and bounds per value in C and the rest (blank ids,
the event time's shape) for the whole batch with numpy; whatever it cannot take
as it is goes through the contract. A corpus of good and bad values, decoded as
one batch, must give the contract's verdict on each, in offset order.
"""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

from shared.contracts.invoice import InvoiceLine
from shared.features.clock import to_micros
from shared.state.dedup import entry
from worker.stream.decode import decode

GOOD = orjson.loads(
    InvoiceLine.create(
        invoice_no="536365",
        stock_code="85123A",
        description="WHITE HANGING HEART T-LIGHT HOLDER",
        quantity=6,
        invoice_date=datetime(2011, 6, 1, 8, 26),
        unit_price=2.55,
        customer_id="17850",
        country="United Kingdom",
    ).model_dump_json()
)


def _value(**change: object) -> bytes:
    return orjson.dumps({k: v for k, v in (GOOD | change).items() if v is not ...})


CORPUS: list[bytes] = [
    _value(),
    _value(invoice_date="2011-06-01 08:26:00"),  # a space: the contract's format, not the fast path's
    _value(invoice_date="2011-06-01T08:26:00.5"),
    _value(invoice_date="2011-06-01T08:26:00.123456"),
    _value(invoice_date="2011-06-01T08:26:00.1234567"),
    _value(invoice_date="2011-06-01T08:26:00."),
    _value(invoice_date="2011-06-01"),
    _value(invoice_date="2011-13-01T08:26:00"),
    _value(invoice_date="2011-02-30T08:26:00"),
    _value(invoice_date="1999-12-31T23:59:59"),
    _value(invoice_date="2100-01-01T00:00:00"),
    _value(invoice_date="2011-06-01T08:26:00Z"),
    _value(invoice_date="2011-06-01T08:26:00+01:00"),
    _value(invoice_date="2011-06-01T08:2a:00"),
    _value(invoice_date=1306916760),
    _value(customer_id=None),
    _value(customer_id=...),
    _value(customer_id=""),
    _value(customer_id="   "),
    _value(customer_id=" 17850"),
    _value(stock_code="\t"),
    _value(country=" "),
    _value(event_id=""),
    _value(invoice_no="C536365", quantity=-6),
    _value(quantity=1_000_001),
    _value(quantity=6.0),
    _value(quantity="6"),
    _value(unit_price=-0.01),
    _value(unit_price=100_000.5),
    _value(unit_price=0),
    _value(description=None),
    _value(description="x" * 513),
    _value(customer_id="1" * 65),
    _value(extra=1),
    _value(stock_code=...),
    b"not json",
    b"",
    b"[]",
    b"null",
    _value().replace(b"2.55", b"NaN"),
]


def _contract(value: bytes) -> InvoiceLine | None:
    try:
        return InvoiceLine.model_validate_json(value)
    except ValueError:
        return None


@pytest.mark.parametrize("cut", [1, 7, len(CORPUS)])
def test_the_batch_decode_gives_the_contracts_verdict_on_every_value(cut: int) -> None:
    offsets = list(range(100, 100 + len(CORPUS)))
    keys = [b"k"] * len(CORPUS)
    accepted: list[int] = []
    refused: list[int] = []
    for start in range(0, len(CORPUS), cut):  # batches of several sizes: the verdict is per value
        records, rejected = decode(
            2, offsets[start : start + cut], keys[start : start + cut], CORPUS[start : start + cut]
        )
        assert records.offset.tolist() == sorted(records.offset.tolist())
        assert [r.offset for r in rejected] == sorted(r.offset for r in rejected)
        for position, offset in enumerate(records.offset.tolist()):
            line = _contract(CORPUS[offset - 100])
            assert line is not None, CORPUS[offset - 100]
            assert (records.seen_bucket[position], records.seen_member[position]) == entry(line.event_id)
            assert records.customer_id[position] == line.customer_id
            assert records.stock_code[position] == line.stock_code
            assert records.quantity[position] == line.quantity
            assert records.price[position] == line.unit_price
            assert records.time[position] == to_micros(line.invoice_date)
        accepted += records.offset.tolist()
        refused += [r.offset for r in rejected]
    assert sorted(accepted + refused) == offsets
    assert all(_contract(CORPUS[offset - 100]) is None for offset in refused), "refused what the contract accepts"
    assert len(accepted) == sum(_contract(value) is not None for value in CORPUS)
