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
from itertools import count, pairwise
from typing import Generic, TypeVar

K = TypeVar("K", int, datetime)  # the event time: a datetime, or its microseconds (the replay's batches)
T = TypeVar("T")


class ReorderBuffer(Generic[K, T]):
    """Holds up to ``capacity`` items; each :meth:`push` releases at most one."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self.late = 0
        self._heap: list[tuple[K, int, T]] = []
        self._arrival = count()
        self._released_up_to: K | None = None
        self._latest: K | None = None  # the latest time ever held: no held or released time is later

    def push(self, at: K, item: T) -> T | None:
        """Add an item; return the item due for release now, if any."""
        if self._released_up_to is not None and at < self._released_up_to:
            self.late += 1
            return item
        if self._latest is None or at > self._latest:
            self._latest = at
        entry = (at, next(self._arrival), item)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, entry)
            return None
        at, _, released = heapq.heappushpop(self._heap, entry)  # push, then pop the smallest: maybe the entry itself
        self._released_up_to = at
        return released

    def push_all(self, times: list[K], items: list[T]) -> list[T]:
        """Push each item in turn; return what :meth:`push` would have released meanwhile, in order.

        Why: input is mostly in order already. A run of times that never decreases
        and starts at or after every time held is released exactly as the heap
        would do it, without one: the held items in their order, then the run in
        arrival order, the last ``capacity`` of them held back (a sorted list is a
        heap). The shortcut needs the held items sorted, so it is taken for runs
        at least a quarter as long as what is held (linear time overall).
        """
        in_order = all(earlier <= later for earlier, later in pairwise(times))
        if not (items and in_order and 4 * len(items) >= len(self._heap)) or (
            self._latest is not None and times[0] < self._latest
        ):
            return [
                released for at, item in zip(times, items, strict=True) if (released := self.push(at, item)) is not None
            ]
        queue = sorted(self._heap)
        queue += zip(times, self._arrival, items, strict=False)
        cut = max(len(queue) - self.capacity, 0)
        self._heap = queue[cut:]
        self._latest = times[-1]
        if not cut:
            return []
        self._released_up_to = queue[cut - 1][0]
        return [item for _, _, item in queue[:cut]]

    def drain(self) -> Iterator[T]:
        """Release everything still held, in order (at end of input)."""
        while self._heap:
            at, _, item = heapq.heappop(self._heap)
            self._released_up_to = at
            yield item
