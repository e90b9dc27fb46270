"""Read the history file into one typed, event-ordered frame, a chunk at a time.

Why chunked and typed per chunk: the readers hand over raw text cells, which cost
about 60 bytes each as Python strings; turned into Arrow-backed strings chunk by
chunk and, once whole, into categoricals (``invoice_no``, ``stock_code``,
``customer_id``, ``country``, ``description``), the history costs tens of bytes a line, and the
bootstrap's groupings work on integer codes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from shared.exceptions import InputError
from shared.readers import open_rows
from shared.readers.columns import CANONICAL

CATEGORICAL = ("invoice_no", "stock_code", "description", "customer_id", "country")
CHUNK_ROWS = 200_000
_TEXT = "str"  # pandas' Arrow-backed string dtype


def _typed(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """One chunk of raw text cells as typed columns."""
    try:
        customer = raw["customer_id"].astype(_TEXT).str.strip().str.removesuffix(".0")
        return pd.DataFrame(
            {
                "invoice_no": raw["invoice_no"].astype(_TEXT).str.strip(),
                "stock_code": raw["stock_code"].astype(_TEXT).str.strip(),
                "description": raw["description"].astype(_TEXT),
                "quantity": pd.to_numeric(raw["quantity"]).astype("int64"),
                "invoice_date": pd.to_datetime(raw["invoice_date"]),
                "unit_price": pd.to_numeric(raw["unit_price"]).astype("float64"),
                "customer_id": customer.where(customer != ""),
                "country": raw["country"].astype(_TEXT),
            }
        )
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: a column does not parse ({exc})") from exc


def load_history(path: Path, until: datetime | None = None) -> pd.DataFrame:
    """Typed rows with ``invoice_date < until``, in event order (time, then file position).

    Event order is the order the replay producer sends, so "the last line" means
    the same thing here and in the worker.
    """
    if not Path(path).exists():
        raise InputError(f"{path}: no such file")
    chunks = []
    for raw in open_rows(Path(path), chunk_rows=CHUNK_ROWS):
        chunk = _typed(raw, Path(path))
        chunks.append(chunk if until is None else chunk[chunk["invoice_date"] < pd.Timestamp(until)])
    if not chunks:
        return pd.DataFrame(columns=list(CANONICAL))
    frame = pd.concat(chunks, ignore_index=True)
    for name in CATEGORICAL:
        frame[name] = frame[name].astype("category")
    return frame.sort_values("invoice_date", kind="stable").reset_index(drop=True)
