"""Rows of a file -> the ordered stream of things to publish (valid lines and dead letters).

Why separate from sending: this part is deterministic given the file and the
selection, which is what makes sequence numbers (and so resume) stable across runs.
Invalid rows become dead letters at once (they have no trustworthy event time);
valid rows go through the reorder buffer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from producer.ordering import ReorderBuffer
from producer.validation import Limits, ParsedLine, parse_row, parse_timestamp
from shared.contracts.dead_letter import DeadLetter
from shared.exceptions import RecordError
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


def publishable_events(
    path: Path, selection: Selection, counts: EventCounts, chunk_rows: int = 50_000, encoding: str = "utf-8"
) -> Iterator[ParsedLine | DeadLetter]:
    """Valid lines in event-time order, with dead letters interleaved where they were read."""
    buffer: ReorderBuffer[ParsedLine] = ReorderBuffer(selection.reorder_buffer)
    try:
        yield from _ordered(path, selection, counts, buffer, chunk_rows, encoding)
        yield from buffer.drain()
    finally:
        counts.late = buffer.late


def _ordered(
    path: Path,
    selection: Selection,
    counts: EventCounts,
    buffer: ReorderBuffer[ParsedLine],
    chunk_rows: int,
    encoding: str,
) -> Iterator[ParsedLine | DeadLetter]:
    taken = 0
    for chunk in open_rows(path, chunk_rows=chunk_rows, encoding=encoding):
        for row_no, values in zip(chunk.index, chunk.itertuples(index=False, name=None), strict=True):
            counts.rows_read += 1
            raw = dict(zip(CANONICAL, values, strict=True))
            try:
                line = parse_row(raw, selection.limits)
            except RecordError as exc:
                if not _maybe_in_window(raw, selection):
                    counts.out_of_window += 1
                    continue
                released: ParsedLine | DeadLetter | None = _dead_letter(exc, raw, path, row_no)
            else:
                if not selection.in_window(line.invoice_date):
                    counts.out_of_window += 1
                    continue
                released = buffer.push(line.invoice_date, line)
            if released is not None:
                yield released
            taken += 1
            if taken == selection.limit:
                return


def _maybe_in_window(raw: dict[str, str | None], selection: Selection) -> bool:
    """An invalid row is replayed unless its (parseable) date says it is outside the window."""
    if selection.start is None and selection.end is None:
        return True
    try:
        return selection.in_window(parse_timestamp(raw["invoice_date"] or ""))
    except RecordError:
        return True


def _dead_letter(exc: RecordError, raw: dict[str, str | None], path: Path, row_no: int) -> DeadLetter:
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
