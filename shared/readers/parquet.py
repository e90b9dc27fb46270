"""Parquet input, streamed record batch by record batch (bounded memory)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared.exceptions import CorruptInputError
from shared.readers.columns import detect_layout, to_canonical


def read_parquet(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Chunks with canonical columns; the index is the 0-based row number in the file."""
    try:
        parquet = pq.ParquetFile(path)
        mapping = detect_layout(parquet.schema_arrow.names)
        start = 0
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=list(mapping)):
            frame = batch.to_pandas()
            frame.index = pd.RangeIndex(start, start + len(frame))
            start += len(frame)
            yield to_canonical(frame, mapping)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptInputError(f"{path}: not a readable Parquet file ({exc}); re-export it") from exc
