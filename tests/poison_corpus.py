"""Poison records of every kind the hardening issue names, written once for the poison test and ``make chaos``.

Each is unusable in its own way (not JSON, 1 MB of garbage, NaN / Infinity / 1e400
/ negative prices, a 40-digit quantity, a time zone, an epoch number, years 9999,
2111 and 2099, an empty customer, an extra or a missing field, a line on the wrong
partition, a line too old to be deduplicated), and each must be dead-lettered once
with the reason given here, changing nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import orjson

from shared.contracts.invoice import InvoiceLine
from shared.kafka_clients import make_producer
from shared.partitioner import partition_of
from shared.settings import Settings


class Poison(NamedTuple):
    """One poison record: what it is, the partition it is sent to, its bytes and the dead letter's reason."""

    label: str
    partition: int
    value: bytes
    reason: str


def _line(customer: str, when: datetime, **change: object) -> dict[str, object]:
    fields: dict[str, object] = dict(
        invoice_no="999001",
        stock_code="85123A",
        description="WHITE HANGING HEART T-LIGHT HOLDER",
        quantity=6,
        invoice_date=when,
        unit_price=2.55,
        customer_id=customer,
        country="United Kingdom",
    )
    return orjson.loads(InvoiceLine.create(**fields).model_dump_json()) | change


def poison_corpus(partitions: int, at: datetime) -> list[Poison]:
    """Every poison record, for a stream whose partitions stand near ``at`` when they arrive.

    The usable fields date from the next day (within the future tolerance); the
    late line is 15 days behind ``at``, beyond the dedup retention. The customer
    (an id above any real one) lives on partition 0; the misrouted line is sent to 1.
    """
    customer = next(c for c in (str(n) for n in range(90_000, 91_000)) if partition_of(c, partitions) == 0)
    when = at + timedelta(days=1, hours=10)
    good = _line(customer, when)

    def json(**change: object) -> bytes:
        return orjson.dumps(_line(customer, when, **change))

    def raw(text: str) -> bytes:
        return text.encode()

    body = orjson.dumps(good).decode()
    return [
        Poison("not json", 0, b"not json at all", "decode_error"),
        Poison("1 MB of garbage", 0, b"x" * 1_000_000, "decode_error"),
        Poison("empty", 0, b"", "decode_error"),
        Poison("NaN price", 0, raw(body.replace('"unit_price":2.55', '"unit_price":NaN')), "decode_error"),
        Poison("Infinity price", 0, raw(body.replace('"unit_price":2.55', '"unit_price":Infinity')), "decode_error"),
        Poison("1e400 price", 0, raw(body.replace('"unit_price":2.55', '"unit_price":1e400')), "decode_error"),
        Poison("negative price", 0, json(unit_price=-1.0), "decode_error"),
        Poison("40-digit quantity", 0, raw(body.replace('"quantity":6', '"quantity":' + "9" * 40)), "decode_error"),
        Poison("time zone", 0, json(invoice_date="2011-04-21T10:00:00+01:00"), "decode_error"),
        Poison("epoch number", 0, json(invoice_date=1303380000), "decode_error"),
        Poison("year 9999", 0, json(invoice_date="9999-01-01T00:00:00"), "decode_error"),
        Poison("year 2111", 0, json(invoice_date="2111-04-21T10:00:00"), "decode_error"),
        Poison("year 2099", 0, json(invoice_date="2099-04-21T10:00:00"), "future_event_time"),
        Poison("empty customer", 0, json(customer_id=""), "decode_error"),
        Poison("extra field", 0, json(loyalty="gold"), "decode_error"),
        Poison("missing field", 0, orjson.dumps({k: v for k, v in good.items() if k != "stock_code"}), "decode_error"),
        Poison("wrong partition", 1, json(), "wrong_partition"),
        Poison("too late to deduplicate", 0, json(invoice_date=(at - timedelta(days=15)).isoformat()), "too_late"),
    ]


def send_poison(settings: Settings, corpus: list[Poison]) -> None:
    """Send every record of ``corpus`` to its partition of the invoices topic, each acknowledged."""
    producer = make_producer(settings.kafka)
    for poison in corpus:
        producer.send(settings.topics.invoices, value=poison.value, key=b"poison", partition=poison.partition).get(
            timeout=30
        )
    producer.close()
