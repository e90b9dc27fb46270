"""A stationary invoice stream for end-to-end drift tests: the reference period again, by new customers.

Why a copy with new customer ids: every invoice statistic the monitors watch
(order value, lines, days since the customer's previous purchase) then has
exactly the reference's distribution, in the reference's order, clumpiness
included; customers join and mature as they did in the reference, so the
segment structure moves as it did then. An optional shift multiplies the prices
of an episode's lines, moving log order value by ``sigmas``·σ.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from shared.contracts.invoice import InvoiceLine
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.drift.invoice_table import invoice_table


@dataclass(frozen=True)
class Shift:
    """Order value × e^(sigmas·σ) on the stream days [onset, revert)."""

    sigmas: float
    onset: int
    revert: int


@dataclass(frozen=True)
class Reference:
    """The history before the cutoff and σ of its log order value per invoice."""

    history: pd.DataFrame
    sigma: float


def reference(dataset: Path, cutoff: datetime) -> Reference:
    history = load_history(dataset, cutoff)
    return Reference(history, float(invoice_table(clean(history).customers)["log_order_value"].std()))


def stream(source: Reference, start: datetime, days: int, shift: Shift | None = None) -> Iterator[InvoiceLine]:
    """The first ``days`` of the reference period moved to begin on ``start``'s day, customer ids suffixed
    ``-copy``; event order."""
    first = source.history["invoice_date"].iloc[0].normalize().to_pydatetime()
    history = source.history[source.history["invoice_date"] < first + timedelta(days=days)]
    moved = start - first
    factor = math.exp(shift.sigmas * source.sigma) if shift else 1.0
    for row in history.itertuples(index=False):
        moment = row.invoice_date.to_pydatetime() + moved
        day = (moment - start).days
        customer = row.customer_id if isinstance(row.customer_id, str) and row.customer_id else None
        yield InvoiceLine.create(
            invoice_no=row.invoice_no,
            stock_code=row.stock_code,
            description=row.description if isinstance(row.description, str) else None,
            quantity=int(row.quantity),
            invoice_date=moment,
            unit_price=float(row.unit_price) * (factor if shift and shift.onset <= day < shift.revert else 1.0),
            customer_id=None if customer is None else f"{customer}-copy",
            country=row.country,
        )
