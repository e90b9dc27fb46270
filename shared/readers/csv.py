"""CSV input, plain or compressed (``.gz``, ``.xz``, ``.bz2`` by suffix), read in chunks.

Memory stays bounded by ``chunk_rows``: pandas streams the (de)compressed bytes.
Every cell is read as text (no NA guessing) so that validation, not pandas,
decides what a bad value is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from shared.exceptions import EmptyInputError
from shared.readers.columns import detect_layout, to_canonical
from shared.readers.errors import corruption_guard

COMPRESSION = {".gz": "gzip", ".xz": "xz", ".bz2": "bz2"}


def read_csv(path: Path, chunk_rows: int, encoding: str) -> Iterator[pd.DataFrame]:
    """Chunks with canonical columns; the index is the 0-based data row number."""
    with corruption_guard(path, encoding):
        try:
            chunks = pd.read_csv(
                path,
                dtype=object,
                keep_default_na=False,
                na_filter=False,
                chunksize=chunk_rows,
                encoding=encoding,
                compression=COMPRESSION.get(path.suffix.lower()),
            )
        except pd.errors.EmptyDataError as exc:
            raise EmptyInputError(f"{path}: no header and no rows") from exc
        with chunks:
            mapping: dict[str, str] | None = None
            for chunk in chunks:
                mapping = mapping or detect_layout(list(chunk.columns))
                yield to_canonical(chunk, mapping, typed=False)
