"""Column layouts we accept, mapped onto one canonical naming.

Why: the UCI dataset exists as *Online Retail* (2010-2011) and *Online Retail II*
(2009-2011) with different header names; everything after the reader sees only the
canonical names, so validation and replay never care which file they were given.
Values stay raw strings so that one bad cell dead-letters one row instead of
failing the whole file inside pandas.
"""

from __future__ import annotations

import pandas as pd

from shared.exceptions import UnknownLayoutError

CANONICAL: tuple[str, ...] = (
    "invoice_no",
    "stock_code",
    "description",
    "quantity",
    "invoice_date",
    "unit_price",
    "customer_id",
    "country",
)

LAYOUTS: dict[str, dict[str, str]] = {
    "Online Retail": {
        "InvoiceNo": "invoice_no",
        "StockCode": "stock_code",
        "Description": "description",
        "Quantity": "quantity",
        "InvoiceDate": "invoice_date",
        "UnitPrice": "unit_price",
        "CustomerID": "customer_id",
        "Country": "country",
    },
    "Online Retail II": {
        "Invoice": "invoice_no",
        "StockCode": "stock_code",
        "Description": "description",
        "Quantity": "quantity",
        "InvoiceDate": "invoice_date",
        "Price": "unit_price",
        "Customer ID": "customer_id",
        "Country": "country",
    },
}


def detect_layout(header: list[str]) -> dict[str, str]:
    """Source-to-canonical column mapping for ``header``; extra columns are ignored.

    Raises :class:`UnknownLayoutError` naming the columns missing from the closest layout.
    """
    present = {str(name).strip() for name in header}
    missing_by_layout = {name: [c for c in mapping if c not in present] for name, mapping in LAYOUTS.items()}
    closest = min(missing_by_layout, key=lambda name: len(missing_by_layout[name]))
    if missing_by_layout[closest]:
        raise UnknownLayoutError(
            f"unknown column layout: closest is {closest}, missing {', '.join(missing_by_layout[closest])} "
            f"(found: {', '.join(str(h) for h in header) or 'no columns'})"
        )
    return {str(h): LAYOUTS[closest][str(h).strip()] for h in header if str(h).strip() in LAYOUTS[closest]}


def to_canonical(frame: pd.DataFrame, mapping: dict[str, str], typed: bool = True) -> pd.DataFrame:
    """Rename to canonical columns (in canonical order), every value a ``str`` or ``None``.

    ``typed=True`` is for sources with typed cells (Excel, Parquet): they are turned
    into the strings a CSV would hold (timestamps as ``YYYY-MM-DD HH:MM:SS``, numbers
    via ``str``). Text sources pass ``typed=False`` and only get ``""`` -> ``None``.
    """
    frame = frame.rename(columns=mapping)
    columns = {name: _as_text(frame[name]) if typed else frame[name] for name in CANONICAL}
    return pd.DataFrame({name: _empty_to_none(column) for name, column in columns.items()}, index=frame.index)


def _as_text(column: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column.dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
    return column.astype(object).map(_cell_text)


def _cell_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if pd.isna(value):
        return None
    return str(value)


def _empty_to_none(column: pd.Series) -> pd.Series:
    column = column.astype(object)
    return column.where(column.notna() & (column != ""), None)
