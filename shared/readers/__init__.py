"""Input readers: CSV (plain/.gz/.xz/.bz2), Excel .xlsx and Parquet, one chunked interface.

Why: the producer should not care which format or which of the two UCI column
namings it was given. :func:`open_rows` checks the file up front, picks the reader
by suffix and yields DataFrames whose columns are :data:`CANONICAL` and whose
cells are raw strings (``None`` for empty), indexed by 0-based data row number.
Whole-file problems raise :class:`~shared.exceptions.InputError` subclasses.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from shared.exceptions import EmptyInputError, InputError
from shared.readers.columns import CANONICAL, LAYOUTS, detect_layout
from shared.readers.csv import COMPRESSION, read_csv
from shared.readers.excel import read_excel
from shared.readers.parquet import read_parquet

__all__ = ["CANONICAL", "LAYOUTS", "detect_layout", "open_rows"]

EXCEL_SUFFIXES = {".xlsx", ".xlsm"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


def open_rows(path: Path | str, chunk_rows: int = 50_000, encoding: str = "utf-8") -> Iterator[pd.DataFrame]:
    """Chunks of canonical raw-string rows from ``path``.

    Missing, empty and unsupported files fail here, before any row is read; a
    wrong layout, corruption or a wrong encoding fail when iteration reaches them
    (rows before a truncation point have already been yielded by then).
    ``encoding`` applies to CSV only.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise EmptyInputError(f"{path}: the file is empty")
    if chunk_rows < 1:
        raise InputError(f"chunk_rows must be positive, not {chunk_rows}")
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        chunks = read_excel(path, chunk_rows)
    elif suffix in PARQUET_SUFFIXES:
        chunks = read_parquet(path, chunk_rows)
    elif suffix == ".csv" or (suffix in COMPRESSION and path.suffixes[-2:-1] == [".csv"]):
        chunks = read_csv(path, chunk_rows, encoding)
    else:
        raise InputError(f"{path}: unsupported file type; use .csv[.gz|.xz|.bz2], .xlsx or .parquet")
    return _non_empty(path, chunks)


def _non_empty(path: Path, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        if len(chunk):
            yield chunk
    if rows == 0:
        raise EmptyInputError(f"{path}: the file holds no data rows")
