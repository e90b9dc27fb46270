"""Excel ``.xlsx`` input (the UCI original), read with the fast calamine engine.

Calamine has no streaming API, so the whole first sheet is loaded at once (the
45 MB UCI workbook needs about 1 GB of RAM); it is then handed out in chunks so
the rest of the pipeline is the same as for CSV. Convert big workbooks to CSV or
Parquet for bounded memory.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from python_calamine import CalamineError

from shared.exceptions import CorruptInputError
from shared.readers.columns import detect_layout, to_canonical


def read_excel(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Chunks of the first sheet with canonical columns; index = 0-based data row number."""
    try:
        sheet = pd.read_excel(path, engine="calamine", dtype=object)
    except (zipfile.BadZipFile, CalamineError, ValueError, OSError) as exc:
        raise CorruptInputError(f"{path}: not a readable .xlsx workbook ({exc}); re-export it from Excel") from exc
    if sheet.columns.empty:
        return
    frame = to_canonical(sheet, detect_layout([str(c) for c in sheet.columns]))
    for start in range(0, len(frame), chunk_rows):
        yield frame.iloc[start : start + chunk_rows]
