"""Does the Quix peer fold what the worker folds? Its aggregates for a few customers against pandas.

Why: a peer that computed something cheaper would make the speed ratio meaningless.
The reference is the bootstrap's batch computation (:func:`batch_aggregates` over
the cleaned rows), which the worker's stream state is tested to equal; here it runs
over the streamed window only. Printed by the benchmark, not timed.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from shared.features.aggregates import CustomerAggregates
from worker.bootstrap.batch_aggregates import batch_aggregates
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history

FIELDS = ("lines", "units", "gross_spend", "cancel_amount", "invoices", "products", "first_purchase", "last_purchase")


def reference(dataset: Path, start: datetime, largest: int = 3, others: int = 3) -> dict[str, dict[str, Any]]:
    """The peer's fields computed with pandas for the ``largest`` customers by lines and ``others`` seeded picks."""
    history = load_history(dataset)
    rows = clean(history[history["invoice_date"] >= pd.Timestamp(start)]).customers
    by_lines = rows["customer_id"].value_counts()
    chosen = list(by_lines.index[:largest])
    chosen += random.Random(0).sample(sorted(by_lines.index[largest:]), others)
    aggregates = batch_aggregates(rows[rows["customer_id"].isin(chosen)]).as_dict()
    return {customer: peer_view(aggregates[customer]) for customer in chosen}


def peer_view(aggregates: CustomerAggregates) -> dict[str, Any]:
    """The fields the peer keeps, in its form (set sizes, ISO times)."""
    return {
        "lines": aggregates.lines,
        "units": aggregates.units,
        "gross_spend": aggregates.gross_spend,
        "cancel_amount": aggregates.cancel_amount,
        "invoices": aggregates.invoices,
        "products": aggregates.products,
        "first_purchase": aggregates.first_purchase and aggregates.first_purchase.isoformat(),
        "last_purchase": aggregates.last_purchase and aggregates.last_purchase.isoformat(),
    }


def differences(expected: dict[str, dict[str, Any]], folded: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per customer whose peer state differs from pandas, what differs (amounts to 1e-9 relative)."""
    found: dict[str, list[str]] = {}
    for customer, fields in expected.items():
        got = folded.get(customer)
        if got is None:
            found[customer] = ["not in the peer's state"]
            continue
        for name in FIELDS:
            want, have = fields[name], got.get(name)
            if isinstance(want, float) and isinstance(have, float):
                same = math.isclose(want, have, rel_tol=1e-9)
            else:
                same = want == have
            if not same:
                found.setdefault(customer, []).append(f"{name}: peer {have!r}, pandas {want!r}")
    return found
