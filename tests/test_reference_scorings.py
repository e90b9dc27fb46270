"""The bootstrap's column-wise reference scorings == scoring each invoice's customer one line at a time.

The segment family's reference is the customers a worker scored in the reference
window's last days, each with its features as of that event. The bootstrap computes
them in waves (:mod:`worker.bootstrap.reference_scorings`); here the real lines go
through the one-line reference fold (:func:`~shared.features.aggregates.apply_line`)
invoice by invoice, as the drift harness replays them, and both must agree to the bit.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from shared.contracts.invoice import InvoiceLine
from shared.features.aggregates import CustomerAggregates, Membership, apply_line
from shared.features.vector import FEATURE_NAMES, compute_features
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.reference_scorings import reference_scorings

CUTOFF = datetime(2011, 2, 1)
SINCE = datetime(2011, 1, 2)


def _one_by_one(lines: pd.DataFrame, since: datetime) -> list[tuple[datetime, str, list[float]]]:
    """Every (invoice, customer) from ``since`` on, scored after its lines are folded one at a time."""
    aggregates: dict[str, CustomerAggregates] = {}
    membership = Membership()
    rows = []
    for (invoice_no, customer), group in lines.groupby(["invoice_no", "customer_id"], sort=False, observed=True):
        aggregate = aggregates.setdefault(customer, CustomerAggregates(customer_id=customer))
        for line in group.itertuples(index=False):
            invoice_line = InvoiceLine(
                event_id=invoice_no, invoice_no=invoice_no, customer_id=customer, stock_code=line.stock_code,
                quantity=line.quantity, country=line.country, invoice_date=line.invoice_date,
                unit_price=line.unit_price,
            )  # fmt: skip
            apply_line(aggregate, invoice_line, membership)
        moment = group["invoice_date"].iloc[0]
        features = compute_features(aggregate, moment)
        if moment >= since and features is not None:
            rows.append((moment, str(customer), [features[name] for name in FEATURE_NAMES]))
    return rows


def test_the_waves_score_every_event_as_the_one_line_fold_does(dataset: Path) -> None:
    lines = clean(load_history(dataset, CUTOFF)).customers
    expected = _one_by_one(lines, SINCE)
    got = reference_scorings(lines, SINCE)
    assert len(expected) > 1_000
    assert [(moment, customer) for moment, customer, _ in expected] == list(
        zip(got["event_time"], got["customer_id"].astype(str), strict=True)
    )
    np.testing.assert_array_equal(np.array([row for _, _, row in expected]), np.array(got["features"].tolist()))
