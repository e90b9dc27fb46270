"""Purchase invoices in event order, one row each: what the worker feeds ``observe_invoice``.

:func:`worker.drift.reference.invoice_statistics` gives the same three
statistics sorted by customer for the snapshot's bins; calibration and replays
need them per invoice in event order (a reference chunk is a stretch of time).
"""

from __future__ import annotations

import pandas as pd

from shared.features.scaling import signed_log1p

STATISTICS: tuple[str, ...] = ("log_order_value", "lines_per_invoice", "days_since_previous_purchase")


def invoice_table(customers: pd.DataFrame) -> pd.DataFrame:
    """event_time, customer_id, the three statistics (days NaN on a first purchase); event order."""
    purchases = customers[customers["kind"] == "purchase"]
    invoices = (
        purchases.groupby(["customer_id", "invoice_no"], sort=False)
        .agg(order_value=("amount", "sum"), lines=("amount", "size"), event_time=("invoice_date", "min"))
        .reset_index()
        .sort_values(["customer_id", "event_time"], kind="stable")
    )
    gaps = invoices.groupby("customer_id")["event_time"].diff().dt.total_seconds() / 86_400.0
    table = pd.DataFrame(
        {
            "event_time": invoices["event_time"],
            "customer_id": invoices["customer_id"],
            "log_order_value": signed_log1p(invoices["order_value"].to_numpy()),
            "lines_per_invoice": invoices["lines"].astype(float),
            "days_since_previous_purchase": gaps,
        }
    )
    return table.sort_values(["event_time", "customer_id"], kind="stable").reset_index(drop=True)
