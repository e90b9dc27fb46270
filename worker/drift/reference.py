"""Reference data for drift monitoring, taken from the bootstrap's training window.

Two things live here: the binning and per-invoice statistics that the detectors
compare live windows with (:func:`bin_shares`, :func:`quantile_bins`,
:func:`invoice_statistics`), and what the bootstrap stores in Redis for the drift
monitor: the reference invoice table (:func:`reference_json`, :func:`load_reference`)
and the reference window's last scorings with their raw features
(:func:`scorings_json`, :func:`load_scorings`), the segment family's reference.
Raw features, not scaled vectors: the monitor scales them with the transform of
the model version it watches.

Both are stored as JSON compressed with zlib, in base64 (:func:`packed`): about a
third of the bytes, which on a shop of a few thousand customers is a tenth of its
state (1.2 MB of JSON on the real year).

Why the invoices and not only their bins: invoices are not independent (a
wholesaler places several a day), so thresholds calibrated on i.i.d. draws from
the bins are far too tight and fire on a stationary stream; chunks of the real
reference sequence carry that clumpiness (:func:`worker.drift.calibration.from_invoices`).
"""

from __future__ import annotations

import base64
import json
import zlib
from io import StringIO

import numpy as np
import pandas as pd
import redis

from shared.contracts.model_snapshot import QuantileBins
from shared.features.scaling import signed_log1p
from shared.state.keys import Keys
from worker.drift.invoice_table import invoice_table

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


def packed(text: str) -> str:
    """JSON as stored: zlib-compressed, base64 (text, so clients that decode replies read it).

    >>> unpacked(packed('{"a": [1, 2]}'))
    '{"a": [1, 2]}'
    """
    return base64.b64encode(zlib.compress(text.encode(), 6)).decode()


def unpacked(stored: str) -> str:
    """The JSON of :func:`packed`; plain JSON (stored by earlier versions) as it is."""
    return stored if stored.startswith("{") else zlib.decompress(base64.b64decode(stored)).decode()


def reference_json(customers: pd.DataFrame) -> str:
    """The reference invoice table of cleaned customer lines, as stored (:func:`packed` JSON, columns split)."""
    return packed(invoice_table(customers).to_json(orient="split", date_format="iso", index=False))


def load_reference(client: redis.Redis, keys: Keys) -> pd.DataFrame | None:
    """The stored reference invoice table, or None (a bootstrap before this was stored)."""
    text = client.get(keys.drift_reference)
    if text is None:
        return None
    table = pd.read_json(StringIO(unpacked(text)), orient="split", dtype=False)
    table["event_time"] = pd.to_datetime(table["event_time"])
    return table


def scorings_json(scorings: pd.DataFrame, feature_names: list[str]) -> str:
    """Scorings (event_time, customer_id, raw ``features`` in ``feature_names`` order), as stored (:func:`packed`)."""
    text = json.dumps(
        {
            "feature_names": feature_names,
            "event_time": [moment.isoformat() for moment in scorings["event_time"]],
            "customer_id": [str(customer) for customer in scorings["customer_id"]],
            "features": np.asarray(scorings["features"].tolist(), dtype=float).reshape(-1, len(feature_names)).tolist(),
        },
        separators=(",", ":"),
    )
    return packed(text)


def load_scorings(client: redis.Redis, keys: Keys) -> tuple[pd.DataFrame, list[str]] | None:
    """The stored reference scorings and their feature names, or None (a bootstrap before they were stored)."""
    text = client.get(keys.drift_scorings)
    if text is None:
        return None
    stored = json.loads(unpacked(text))
    frame = pd.DataFrame(
        {
            "event_time": pd.to_datetime(stored["event_time"]),
            "customer_id": stored["customer_id"],
            "features": stored["features"],
        }
    )
    return frame, stored["feature_names"]
