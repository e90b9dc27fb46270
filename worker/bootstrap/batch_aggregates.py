"""Per-customer aggregates and features for the whole history at once (groupby, no row loops)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from shared.features.aggregates import CustomerAggregates, GuestStats
from shared.features.vector import FEATURE_NAMES, compute_features


def _python(value: Any) -> Any:
    """numpy/pandas scalars -> the plain Python types the dataclass and JSON expect."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if value is pd.NaT:
        return None
    return value.item() if hasattr(value, "item") else value


def _sets(rows: pd.DataFrame, column: str) -> dict[str, set[str]]:
    return {customer: set(values) for customer, values in rows.groupby("customer_id")[column].unique().items()}


def batch_aggregates(customers: pd.DataFrame) -> dict[str, CustomerAggregates]:
    """Exactly what folding ``apply_line`` over the cleaned rows in event order gives.

    ``customers`` is :attr:`CleanedHistory.customers` (event order, with ``kind``,
    ``amount`` and ``month``); every row in it counts, as ``apply_line`` counts every
    line that is not a guest line and has a positive price.
    """
    kind = customers["kind"]
    purchase = customers[kind == "purchase"]
    cancellation = customers[kind == "cancellation"]
    non_product = customers[kind == "non_product"]
    by_customer = customers.groupby("customer_id")
    scalars = pd.DataFrame(
        {
            "country": by_customer["country"].last(),
            "lines": by_customer.size(),
            "purchase_lines": purchase.groupby("customer_id").size(),
            "cancel_lines": cancellation.groupby("customer_id").size(),
            "non_product_lines": non_product.groupby("customer_id").size(),
            "units": purchase.groupby("customer_id")["quantity"].sum(),
            "gross_spend": purchase.groupby("customer_id")["amount"].sum(),
            "cancel_amount": -cancellation.groupby("customer_id")["amount"].sum(),
            "non_product_amount": non_product.groupby("customer_id")["amount"].sum(),
            "first_seen": by_customer["invoice_date"].min(),
            "last_seen": by_customer["invoice_date"].max(),
            "first_purchase": purchase.groupby("customer_id")["invoice_date"].min(),
            "last_purchase": purchase.groupby("customer_id")["invoice_date"].max(),
        }
    )
    counts = ["lines", "purchase_lines", "cancel_lines", "non_product_lines", "units"]
    amounts = ["gross_spend", "cancel_amount", "non_product_amount"]
    scalars[counts] = scalars[counts].fillna(0).astype("int64")
    scalars[amounts] = scalars[amounts].fillna(0.0) + 0.0  # + 0.0 turns -0.0 (negated empty sum) into 0.0
    invoices = _sets(purchase, "invoice_no")
    cancel_invoices = _sets(cancellation, "invoice_no")
    products = _sets(purchase, "stock_code")
    month_spend: dict[str, dict[str, float]] = {}
    monthly = customers[kind != "non_product"].groupby(["customer_id", "month"])["amount"].sum()
    for (customer, month), amount in monthly.items():
        month_spend.setdefault(customer, {})[month] = float(amount)
    product_units: dict[str, dict[str, int]] = {}
    units = customers[kind != "non_product"].groupby(["customer_id", "stock_code"])["quantity"].sum()
    for (customer, code), quantity in units.items():
        product_units.setdefault(customer, {})[code] = int(quantity)
    aggregates: dict[str, CustomerAggregates] = {}
    for customer, row in zip(scalars.index, scalars.to_dict("records"), strict=True):
        aggregates[customer] = CustomerAggregates(
            customer_id=customer,
            **{name: _python(value) for name, value in row.items()},
            invoices=invoices.get(customer, set()),
            cancel_invoices=cancel_invoices.get(customer, set()),
            products=products.get(customer, set()),
            month_spend=month_spend.get(customer, {}),
            product_units=product_units.get(customer, {}),
        )
    return aggregates


def guest_stats(guests: pd.DataFrame) -> GuestStats:
    """What folding ``apply_guest_line`` over the guest rows gives."""
    return GuestStats(
        lines=len(guests), amount=float(guests["amount"].sum()), invoices=set(guests["invoice_no"].unique())
    )


def feature_frame(aggregates: dict[str, CustomerAggregates], as_of: datetime) -> pd.DataFrame:
    """Features as of ``as_of``, one row per customer that has purchased (index: customer id).

    ``compute_features`` is pure and cheap, so it is called per customer: the batch
    and the stream then share one definition instead of two equal ones.
    """
    rows = {}
    for customer, aggregate in aggregates.items():
        features = compute_features(aggregate, as_of)
        if features is not None:
            rows[customer] = features
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(FEATURE_NAMES))
    frame.index.name = "customer_id"
    return frame.sort_index()
