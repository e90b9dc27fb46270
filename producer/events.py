"""Rows of a file -> the ordered stream of things to publish (valid lines and dead letters).

Why separate from sending: this part is deterministic given the file and the
selection, which is what makes sequence numbers (and so resume) stable across runs.
Invalid rows become dead letters at once (they have no trustworthy event time);
valid rows go through the reorder buffer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from producer.batch import Batch, BatchBuilder, Row
from producer.columnar import CheckedRows, check_rows, to_microseconds
from producer.ordering import ReorderBuffer
from producer.validation import Limits, parse_row, parse_timestamp
from shared.contracts.dead_letter import DeadLetter
from shared.exceptions import RecordError
from shared.partitioner import KeyPartitioner
from shared.readers import CANONICAL, open_rows


@dataclass(frozen=True)
class Selection:
    """Which rows of the file are replayed, and how they are judged and ordered."""

    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    limits: Limits = field(default_factory=Limits)
    reorder_buffer: int = 10_000

    def in_window(self, at: datetime) -> bool:
        """Start inclusive, end exclusive."""
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


@dataclass
class EventCounts:
    """What the event stream saw besides what it yields."""

    rows_read: int = 0
    out_of_window: int = 0
    late: int = 0


def publishable_batches(
    path: Path,
    selection: Selection,
    counts: EventCounts,
    partitions: Iterable[int],
    chunk_rows: int = 50_000,
    encoding: str = "utf-8",
) -> Iterator[Batch]:
    """Valid lines in event-time order, with dead letters interleaved where they were read, in batches.

    ``partitions`` are the invoices topic's: each line carries the one
    :mod:`shared.partitioner` gives its key.
    """
    buffer: ReorderBuffer[int, Row] = ReorderBuffer(selection.reorder_buffer)
    batches = BatchBuilder()
    partitioner = KeyPartitioner(partitions)
    try:
        taken = 0
        for chunk in open_rows(path, chunk_rows=chunk_rows, encoding=encoding):
            taken, limited = _take(chunk, taken, selection, counts, buffer, batches, partitioner, path)
            yield from batches.full()
            if limited:
                break
        batches.lines(buffer.drain())
        yield from batches.rest()
    finally:
        counts.late = buffer.late


def _take(
    chunk: pd.DataFrame,
    taken: int,
    selection: Selection,
    counts: EventCounts,
    buffer: ReorderBuffer[int, Row],
    batches: BatchBuilder,
    partitioner: KeyPartitioner,
    path: Path,
) -> tuple[int, bool]:
    """Read one chunk's rows into the reorder buffer (lines) and the batches (dead letters), in file order.

    Returns how many rows the selection has taken so far, and whether that is
    ``selection.limit`` (then the rest of the input is not read, nor counted).
    """
    checked = check_rows(chunk, selection.limits, partitioner)
    times = checked.times_us
    in_window = np.ones(len(times), dtype=bool)
    if selection.start is not None:
        in_window &= times >= to_microseconds(selection.start)
    if selection.end is not None:
        in_window &= times < to_microseconds(selection.end)
    wanted = np.zeros(len(chunk), dtype=bool)
    wanted[checked.valid] = in_window
    letters = {}
    for position in np.flatnonzero(~checked.valid).tolist():
        raw = dict(zip(CANONICAL, chunk.iloc[position].tolist(), strict=True))
        letter = _dead_letter(raw, selection, path, int(chunk.index[position]))
        if letter is not None:
            letters[position] = letter
            wanted[position] = True
    positions = np.flatnonzero(wanted)
    limited = selection.limit is not None and taken < selection.limit <= taken + len(positions)
    if limited:
        positions = positions[: selection.limit - taken]  # type: ignore[operator]
        read = int(positions[-1]) + 1
    else:
        read = len(chunk)
    counts.rows_read += read
    counts.out_of_window += read - len(positions)

    line_times = times[in_window].tolist()
    rows = list(zip(line_times, *_valid_in_window(checked, in_window), strict=True))
    line_positions = np.flatnonzero(checked.valid)[in_window]
    lines = 0
    for position in sorted(p for p in letters if p < read):
        before = int(np.searchsorted(line_positions, position))
        batches.lines(buffer.push_all(line_times[lines:before], rows[lines:before]))
        batches.dead_letter(letters[position])
        lines = before
    end = int(np.searchsorted(line_positions, read))
    batches.lines(buffer.push_all(line_times[lines:end], rows[lines:end]))
    return taken + len(positions), limited


def _valid_in_window(checked: CheckedRows, in_window: np.ndarray) -> tuple[list[Any], ...]:
    return tuple(
        list(compress(column, in_window))
        for column in (checked.keys, checked.values, checked.partitions, checked.guests)
    )


def _maybe_in_window(raw: dict[str, str | None], selection: Selection) -> bool:
    """An invalid row is replayed unless its (parseable) date says it is outside the window."""
    if selection.start is None and selection.end is None:
        return True
    try:
        return selection.in_window(parse_timestamp(raw["invoice_date"] or ""))
    except RecordError:
        return True


def _dead_letter(raw: dict[str, str | None], selection: Selection, path: Path, row_no: int) -> DeadLetter | None:
    """The dead letter of a row :func:`check_rows` refused (None: outside the window), with parse_row's reason."""
    try:
        parse_row(raw, selection.limits)
    except RecordError as exc:
        return _letter(exc, raw, path, row_no) if _maybe_in_window(raw, selection) else None
    raise AssertionError(f"row {row_no + 1}: the column-wise check refused a row parse_row accepts")


def _letter(exc: RecordError, raw: dict[str, str | None], path: Path, row_no: int) -> DeadLetter:
    return DeadLetter(
        stage="validate",
        reason=exc.kind,
        error_class=type(exc).__name__,
        error=str(exc),
        field=exc.field,
        raw=raw,
        source=str(path),
        position=f"row {row_no + 1}",
    )
