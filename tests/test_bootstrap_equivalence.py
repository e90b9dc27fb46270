"""Batch path == stream's update function == the one-line reference fold, on the whole real year, every customer.

The bootstrap runs the worker's column-wise fold over the whole history at once
(:mod:`worker.bootstrap.batch_aggregates`); here every line of the real file goes
through the one-line reference fold (:func:`~shared.features.aggregates.apply_line`),
duplicates dropped by event id as the worker drops them, and the two must agree
to the bit. The worker's own state is compared with an independent pandas
computation in ``test_worker_stream``.
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import datetime
from pathlib import Path

import pandas as pd

from shared.contracts.invoice import InvoiceLine
from shared.features.aggregates import CustomerAggregates, GuestStats, Membership, apply_line, classify
from shared.features.vector import FEATURE_NAMES, compute_features
from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame, guest_stats
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history

AS_OF = datetime(2011, 12, 10)


def _fold(history: pd.DataFrame) -> tuple[dict[str, CustomerAggregates], GuestStats, int]:
    """One line at a time, dropping repeated event ids."""
    seen: set[str] = set()
    aggregates: dict[str, CustomerAggregates] = {}
    membership = Membership()
    guest_invoices: set[str] = set()
    guests = GuestStats()
    duplicates = 0
    for row in history.itertuples(index=False):
        if row.unit_price < 0:  # refused by the contract (dead-lettered by the producer); the batch drops it too
            continue
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
            guest_invoices.add(line.invoice_no)
            guests = GuestStats(guests.lines + 1, guests.amount + line.amount, len(guest_invoices))
        elif kind != "invalid_price":
            customer = line.customer_id or ""
            apply_line(aggregates.setdefault(customer, CustomerAggregates(customer_id=customer)), line, membership)
    return aggregates, guests, duplicates


def test_batch_and_the_one_line_fold_agree_for_every_customer(dataset: Path) -> None:
    history = load_history(dataset)
    cleaned = clean(history)
    batch = batch_aggregates(cleaned.customers)
    stream, stream_guests, duplicates = _fold(history)

    assert duplicates == cleaned.report.duplicates_dropped == 5268
    assert len(batch) == len(stream) == cleaned.report.customers
    by_customer = batch.as_dict()
    assert by_customer.keys() == stream.keys()
    for customer, aggregate in stream.items():
        expected = by_customer[customer]
        for field in fields(CustomerAggregates):
            left, right = getattr(expected, field.name), getattr(aggregate, field.name)
            if field.name == "months":  # the one-line fold keeps months that net to zero
                right = {month: value for month, value in right.items() if value != 0.0}
            assert left == right, f"customer {customer}, {field.name}: {left!r} != {right!r}"

    batch_guests = guest_stats(cleaned.guests)
    assert batch_guests.lines == stream_guests.lines == cleaned.report.guest_rows
    assert batch_guests.invoices == stream_guests.invoices
    assert math.isclose(batch_guests.amount, stream_guests.amount, rel_tol=1e-9)

    features = feature_frame(batch, AS_OF)
    scored = 0
    for customer, aggregate in stream.items():
        one = compute_features(aggregate, AS_OF)
        if one is None:
            assert customer not in features.index
            continue
        scored += 1
        assert features.loc[customer].tolist() == [one[name] for name in FEATURE_NAMES], customer
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
    membership = Membership()
    apply_line(aggregates, line(2, "France"), membership)
    apply_line(aggregates, line(1, "United Kingdom"), membership)  # arrives late
    assert aggregates.country == "France"
