"""The reference invoices the invoice-behaviour monitors are calibrated on, stored by the bootstrap.

Why the invoices and not only their bins: invoices are not independent (a
wholesaler places several a day), so thresholds calibrated on i.i.d. draws from
the bins are far too tight and fire on a stationary stream; chunks of the real
reference sequence carry that clumpiness (:func:`worker.drift.calibration.from_invoices`).
"""

from __future__ import annotations

from io import StringIO

import pandas as pd
import redis

from shared.state_keys import Keys
from worker.drift.invoice_table import invoice_table


def reference_json(customers: pd.DataFrame) -> str:
    """The reference invoice table of cleaned customer lines, as JSON (columns split, ISO times)."""
    return invoice_table(customers).to_json(orient="split", date_format="iso", index=False)


def load_reference(client: redis.Redis, keys: Keys) -> pd.DataFrame | None:
    """The stored reference invoice table, or None (a bootstrap before this was stored)."""
    text = client.get(keys.drift_reference)
    if text is None:
        return None
    table = pd.read_json(StringIO(text), orient="split", dtype=False)
    table["event_time"] = pd.to_datetime(table["event_time"])
    return table
