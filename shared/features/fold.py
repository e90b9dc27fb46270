"""Fold a batch of customer lines into aggregate columns, column-wise, in the lines' order.

This is the worker's update function. It equals folding :func:`~shared.features.aggregates.apply_line`
over the same lines one by one (a test folds the real year both ways and against
the bootstrap's pandas computation): integer counts and extremes commute, and the
float sums are accumulated per customer in the lines' order (``np.add.at`` is
sequential), so the result does not depend on where a batch was cut.

Whether a line opens a new invoice or buys a new product is an input (``new_invoice``,
``new_product``): the worker learns it from Redis, where those sets live.

>>> import numpy as np
>>> from shared.features.aggregates import AggregateColumns
>>> columns = AggregateColumns(); rows = columns.append(1)
>>> batch = LineBatch(slot=np.array([0, 0]), kind=np.array([PURCHASE, CANCELLATION], dtype=np.int8),
...     quantity=np.array([2, -1]), amount=np.array([5.0, -2.5]), time=np.array([10, 20]),
...     month=np.array([24137, 24137]), country=np.array([1, 1], dtype=np.int32),
...     new_invoice=np.array([True, True]), new_product=np.array([True, False]))
>>> fold(columns, batch)
>>> int(columns.invoices[0]), int(columns.cancel_invoices[0]), float(columns.gross_spend[0] - columns.cancel_amount[0])
(1, 1, 2.5)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from shared.features.aggregates import MONTH_WINDOW, AggregateColumns
from shared.features.clock import NO_MONTH, NO_TIME

PURCHASE, CANCELLATION, NON_PRODUCT = 0, 1, 2


@dataclass
class LineBatch:
    """Customer lines (price > 0, with a customer) in processing order, as columns."""

    slot: np.ndarray  # row of the customer in the aggregate columns
    kind: np.ndarray  # PURCHASE, CANCELLATION or NON_PRODUCT (int8)
    quantity: np.ndarray  # int64
    amount: np.ndarray  # quantity * unit price, float64
    time: np.ndarray  # event time, µs (int64)
    month: np.ndarray  # month number of the event time
    country: np.ndarray  # country code (int32)
    new_invoice: np.ndarray  # bool: the first line of an invoice the customer did not have
    new_product: np.ndarray  # bool: a purchase line of a stock code the customer had not bought

    def take(self, mask: np.ndarray) -> LineBatch:
        return LineBatch(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def __len__(self) -> int:
        return len(self.slot)


def _count(target: np.ndarray, slots: np.ndarray, weights: np.ndarray | None = None) -> None:
    np.add.at(target, slots, 1 if weights is None else weights)


def fold(columns: AggregateColumns, batch: LineBatch) -> None:
    """Add ``batch`` to ``columns`` (in place)."""
    if not len(batch):
        return
    slot, kind = batch.slot, batch.kind
    columns.monthly_month[slot] = NO_MONTH  # their monthly features are computed again when next asked for
    _count(columns.lines, slot)
    _earliest(columns.first_seen, slot, batch.time, NO_TIME)
    _latest_country(columns, batch)
    product = kind != NON_PRODUCT
    purchase, cancellation, non_product = kind == PURCHASE, kind == CANCELLATION, ~product
    _count(columns.non_product_lines, slot[non_product])
    np.add.at(columns.non_product_amount, slot[non_product], batch.amount[non_product])
    _count(columns.cancel_lines, slot[cancellation])
    np.add.at(columns.cancel_amount, slot[cancellation], -batch.amount[cancellation])
    _count(columns.cancel_invoices, slot[cancellation & batch.new_invoice])
    _count(columns.purchase_lines, slot[purchase])
    _count(columns.units, slot[purchase], batch.quantity[purchase])
    np.add.at(columns.gross_spend, slot[purchase], batch.amount[purchase])
    _count(columns.invoices, slot[purchase & batch.new_invoice])
    _count(columns.products, slot[purchase & batch.new_product])
    times = batch.time[purchase]
    _earliest(columns.first_purchase, slot[purchase], times, NO_TIME)
    _later_purchase(columns, slot[purchase], times)
    _months(columns, slot[product], batch.month[product], batch.amount[product])


def _earliest(column: np.ndarray, slots: np.ndarray, values: np.ndarray, none: int) -> None:
    """``column[slot] = min(column[slot], value)`` in place, where ``none`` means "no value yet".

    Every slot given receives a value, so an empty one can start at the largest integer.
    """
    if not len(slots):
        return
    column[slots[column[slots] == none]] = np.iinfo(np.int64).max
    np.minimum.at(column, slots, values)


def _later_purchase(columns: AggregateColumns, slots: np.ndarray, times: np.ndarray) -> None:
    """``last_purchase`` is the latest purchase time (NO_TIME is the smallest integer, so max works)."""
    np.maximum.at(columns.last_purchase, slots, times)


def _latest_country(columns: AggregateColumns, batch: LineBatch) -> None:
    """The country of the latest line by event time; ties go to the later line, as in :func:`apply_line`."""
    if (np.diff(batch.time) >= 0).all():  # event order (the usual case): the last line of each customer wins
        _, from_end = np.unique(batch.slot[::-1], return_index=True)
        winners = len(batch) - 1 - from_end
    else:
        order = np.lexsort((np.arange(len(batch)), batch.time, batch.slot))
        slots = batch.slot[order]
        winners = order[np.flatnonzero(np.r_[slots[1:] != slots[:-1], True])]
    winner_slots = batch.slot[winners]
    later = (columns.last_seen[winner_slots] == NO_TIME) | (batch.time[winners] >= columns.last_seen[winner_slots])
    columns.country[winner_slots[later]] = batch.country[winners[later]]
    columns.last_seen[winner_slots[later]] = batch.time[winners[later]]


def _months(columns: AggregateColumns, slots: np.ndarray, months: np.ndarray, amounts: np.ndarray) -> None:
    """Monthly spend in the window ending at each customer's latest active month.

    Equivalent to :func:`apply_line`'s one-by-one update: the window first moves to
    the batch's latest month per customer (clearing the months that fall out), then
    every amount inside it is added in order; amounts of months that fell out are
    dropped either way.
    """
    if not len(slots):
        return
    _earliest(columns.first_month, slots, months, NO_MONTH)
    previous = columns.last_month[slots]
    np.maximum.at(columns.last_month, slots, months)
    latest = columns.last_month[slots]
    moved = latest > previous
    restart = moved & ((previous == NO_MONTH) | (latest - previous >= MONTH_WINDOW))
    columns.months[slots[restart]] = 0.0
    slide = moved & ~restart
    old, new, customer = previous[slide], latest[slide], slots[slide]
    for step in range(1, MONTH_WINDOW if len(customer) else 1):  # months old+1 .. new come into the window empty
        cleared = old + step <= new
        columns.months[customer[cleared], (old[cleared] + step) % MONTH_WINDOW] = 0.0
    inside = months > columns.last_month[slots] - MONTH_WINDOW
    np.add.at(columns.months, (slots[inside], months[inside] % MONTH_WINDOW), amounts[inside])
