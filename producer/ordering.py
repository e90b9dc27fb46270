"""Event-time ordering: a bounded reorder buffer for slightly disordered input.

Why bounded: the file may be huge, and a row that shows up hours late should not
hold everything else back. Rows are held in a min-heap of ``capacity`` entries and
released smallest event time first (ties keep file order, so one customer's lines
never swap). A row older than what has already been released cannot be put back
in order any more: it is released at once, never dropped, and counted as late.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import datetime
from itertools import count
from typing import Generic, TypeVar

T = TypeVar("T")


class ReorderBuffer(Generic[T]):
    """Holds up to ``capacity`` items; each :meth:`push` releases at most one."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.late = 0
        self._heap: list[tuple[datetime, int, T]] = []
        self._arrival = count()
        self._released_up_to: datetime | None = None

    def push(self, at: datetime, item: T) -> T | None:
        """Add an item; return the item due for release now, if any."""
        if self._released_up_to is not None and at < self._released_up_to:
            self.late += 1
            return item
        heapq.heappush(self._heap, (at, next(self._arrival), item))
        if len(self._heap) <= self.capacity:
            return None
        at, _, released = heapq.heappop(self._heap)
        self._released_up_to = at
        return released

    def drain(self) -> Iterator[T]:
        """Release everything still held, in order (at end of input)."""
        while self._heap:
            at, _, item = heapq.heappop(self._heap)
            self._released_up_to = at
            yield item
