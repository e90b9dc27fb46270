"""Reference distributions for drift monitoring, taken from the training window.

A drift monitor bins live values with the same edges (:func:`bin_shares`) and
compares the shares with these (e.g. PSI).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.contracts.model_snapshot import QuantileBins
from shared.features.scaling import signed_log1p

BINS = 10


def bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    """Share of ``values`` per bin; values outside the edges fall into the first or last bin."""
    if len(values) == 0:
        return [0.0] * max(1, len(edges) - 1)
    index = np.searchsorted(np.asarray(edges[1:-1]), values, side="right")
    return (np.bincount(index, minlength=max(1, len(edges) - 1)) / len(values)).tolist()


def quantile_bins(values: np.ndarray, bins: int = BINS) -> QuantileBins:
    """Decile edges (merged where values tie, so a mostly-zero feature gets fewer bins)."""
    values = np.asarray(values, dtype=float)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1))).tolist()
    if len(edges) == 1:
        edges = edges * 2
    return QuantileBins(edges=edges, shares=bin_shares(values, edges))


def invoice_statistics(customers: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per purchase invoice: log order value, lines, and days since the customer's previous invoice."""
    purchases = customers[customers["kind"] == "purchase"]
    invoices = (
        purchases.groupby(["customer_id", "invoice_no"])
        .agg(value=("amount", "sum"), lines=("amount", "size"), moment=("invoice_date", "min"))
        .reset_index()
        .sort_values(["customer_id", "moment"], kind="stable")
    )
    gaps = invoices.groupby("customer_id")["moment"].diff().dt.total_seconds() / 86_400.0
    return {
        "log_order_value": signed_log1p(invoices["value"].to_numpy()),
        "lines_per_invoice": invoices["lines"].to_numpy(dtype=float),
        "days_since_previous_purchase": gaps.dropna().to_numpy(),
    }
