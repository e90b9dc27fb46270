"""Read the history file into one typed, event-ordered frame."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from shared.exceptions import InputError
from shared.readers import open_rows
from shared.readers.columns import CANONICAL


def _raw_frame(path: Path) -> pd.DataFrame:
    """Canonical raw-string columns from the shared readers (any supported format)."""
    chunks = list(open_rows(path))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=list(CANONICAL))


def load_history(path: Path, until: datetime | None = None) -> pd.DataFrame:
    """Typed rows with ``invoice_date < until``, in event order (time, then file position).

    Event order is the order the replay producer sends, so "the last line" means
    the same thing here and in the worker.
    """
    if not Path(path).exists():
        raise InputError(f"{path}: no such file")
    raw = _raw_frame(Path(path))
    try:
        frame = pd.DataFrame(
            {
                "invoice_no": raw["invoice_no"].str.strip(),
                "stock_code": raw["stock_code"].str.strip(),
                "description": raw["description"],
                "quantity": pd.to_numeric(raw["quantity"]).astype("int64"),
                "invoice_date": pd.to_datetime(raw["invoice_date"]),
                "unit_price": pd.to_numeric(raw["unit_price"]).astype("float64"),
                "customer_id": raw["customer_id"].str.strip().str.replace(r"\.0$", "", regex=True),
                "country": raw["country"],
            }
        )
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: a column does not parse ({exc})") from exc
    frame["customer_id"] = frame["customer_id"].where(frame["customer_id"] != "")
    if until is not None:
        frame = frame[frame["invoice_date"] < pd.Timestamp(until)]
    return frame.sort_values("invoice_date", kind="stable").reset_index(drop=True)
