"""Batch path == stream path, on the whole real year, for every customer."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pandas as pd

from shared.contracts.invoice import InvoiceLine
from shared.features.aggregates import CustomerAggregates, GuestStats, apply_guest_line, apply_line, classify
from shared.features.vector import FEATURE_NAMES, compute_features
from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame, guest_stats
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history

AS_OF = datetime(2011, 12, 10)


def _close(left: float, right: float) -> bool:
    return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9)


def _fold(history: pd.DataFrame) -> tuple[dict[str, CustomerAggregates], GuestStats, int]:
    """What the worker does: one line at a time, dropping repeated event ids."""
    seen: set[str] = set()
    aggregates: dict[str, CustomerAggregates] = {}
    guests = GuestStats()
    duplicates = 0
    for row in history.itertuples(index=False):
        line = InvoiceLine.create(
            invoice_no=row.invoice_no,
            stock_code=row.stock_code,
            description=None if pd.isna(row.description) else row.description,
            quantity=int(row.quantity),
            invoice_date=row.invoice_date.to_pydatetime(),
            unit_price=float(row.unit_price),
            customer_id=None if pd.isna(row.customer_id) else row.customer_id,
            country=row.country,
        )
        if line.event_id in seen:
            duplicates += 1
            continue
        seen.add(line.event_id)
        kind = classify(line)
        if kind == "guest":
            apply_guest_line(guests, line)
        elif kind != "invalid_price":
            customer = line.customer_id or ""
            apply_line(aggregates.setdefault(customer, CustomerAggregates(customer_id=customer)), line)
    return aggregates, guests, duplicates


def _assert_same_aggregates(batch: CustomerAggregates, stream: CustomerAggregates) -> None:
    for field in fields(CustomerAggregates):
        left, right = getattr(batch, field.name), getattr(stream, field.name)
        where = f"customer {stream.customer_id}, {field.name}"
        if isinstance(right, float):
            assert _close(left, right), f"{where}: {left} != {right}"
        elif isinstance(right, dict):
            assert left.keys() == right.keys(), where
            assert all(_close(left[key], right[key]) for key in right), f"{where}: {left} != {right}"
        else:
            assert type(left) is type(right) and left == right, f"{where}: {left!r} != {right!r}"


def test_batch_and_stream_agree_for_every_customer(dataset: Path) -> None:
    history = load_history(dataset)
    cleaned = clean(history)
    batch = batch_aggregates(cleaned.customers)
    stream, stream_guests, duplicates = _fold(history)

    assert duplicates == cleaned.report.duplicates_dropped == 5268
    assert len(batch) == len(stream) == cleaned.report.customers
    assert batch.keys() == stream.keys()
    for customer, aggregate in stream.items():
        _assert_same_aggregates(batch[customer], aggregate)

    batch_guests = guest_stats(cleaned.guests)
    assert batch_guests.lines == stream_guests.lines == cleaned.report.guest_rows
    assert batch_guests.invoices == stream_guests.invoices
    assert _close(batch_guests.amount, stream_guests.amount)

    features = feature_frame(batch, AS_OF)
    scored = 0
    for customer, aggregate in stream.items():
        expected = compute_features(aggregate, AS_OF)
        if expected is None:
            assert customer not in features.index
            continue
        scored += 1
        actual = features.loc[customer]
        for name in FEATURE_NAMES:
            assert _close(float(actual[name]), expected[name]), f"customer {customer}, {name}"
    assert scored == len(features)


def test_country_is_the_latest_lines_whatever_the_arrival_order() -> None:
    def line(day: int, country: str) -> InvoiceLine:
        return InvoiceLine.create(
            invoice_no=f"53636{day}",
            stock_code="85123A",
            description=None,
            quantity=1,
            invoice_date=datetime(2011, 1, day),
            unit_price=2.55,
            customer_id="17850",
            country=country,
        )

    aggregates = CustomerAggregates(customer_id="17850")
    apply_line(aggregates, line(2, "France"))
    apply_line(aggregates, line(1, "United Kingdom"))  # arrives late
    assert aggregates.country == "France"
