"""The customers a worker owns, as columns: slots, aggregates, segment state, what changed.

Why columns: a worker owns up to millions of customers and sweeps all of them
every event day, so each costs a fixed number of bytes (about 450, whatever its
history: see :class:`~shared.features.aggregates.AggregateColumns`) and is moved
with numpy, not as a Python object. The collections that grow with history live
in Redis (the customer's members hash).

The book is authoritative while the worker owns the partitions (its commits are
fenced), and rebuilt from Redis on assignment: :meth:`CustomerBook.add_loaded`.
What a batch changed is marked per slot (:data:`AGG`, :data:`DECISION`,
:data:`PENDING`) and written by the next commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from shared.features.aggregates import AggregateColumns
from shared.features.clock import NO_TIME

NO_SEGMENT = -1
AGG, DECISION, PENDING = 1, 2, 4  # what of a record changed: aggregates, the scoring decision, the pending switch

_STATE = {
    "partition": (np.int32, 0),
    "segment": (np.int64, NO_SEGMENT),  # assigned segment id (counted in the model statistics)
    "published": (np.int64, NO_SEGMENT),  # the segment consumers were told
    "published_at": (np.int64, NO_TIME),  # event time of the last published change
    "seq": (np.int64, 0),  # sequence of the last published change
    "pending_segment": (np.int64, NO_SEGMENT),  # an inactivity switch being confirmed
    "pending_count": (np.int64, 0),
    "as_of": (np.int64, NO_TIME),  # event time of the decision that set ``segment``
    "dirty": (np.uint8, 0),
}


class CustomerBook:
    """Owned customers by slot; ``slot_of`` maps a customer id to its slot."""

    partition: np.ndarray
    segment: np.ndarray
    published: np.ndarray
    published_at: np.ndarray
    seq: np.ndarray
    pending_segment: np.ndarray
    pending_count: np.ndarray
    as_of: np.ndarray
    dirty: np.ndarray

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.aggregates = AggregateColumns()
        for name, (dtype, fill) in _STATE.items():
            setattr(self, name, np.full(0, fill, dtype=dtype))

    def __len__(self) -> int:
        return len(self.ids)

    def _grow(self, n: int) -> np.ndarray:
        rows = self.aggregates.append(n)
        capacity = self.aggregates.capacity
        for name, (dtype, fill) in _STATE.items():
            current = getattr(self, name)
            if len(current) < capacity:
                grown = np.full(capacity, fill, dtype=dtype)
                grown[: len(current)] = current
                setattr(self, name, grown)
            else:
                getattr(self, name)[rows] = fill
        return rows

    def add(self, customer_ids: Sequence[str], partitions: Sequence[int] | np.ndarray) -> np.ndarray:
        """New customers (never seen before): empty aggregates, no segment. Returns their slots."""
        rows = self._grow(len(customer_ids))
        for row, cid in zip(rows.tolist(), customer_ids, strict=True):
            self.slot_of[cid] = row
        self.ids.extend(customer_ids)
        self.partition[rows] = partitions
        return rows

    def slots(self, customer_ids: Iterable[str]) -> np.ndarray:
        slot_of = self.slot_of
        return np.fromiter((slot_of[cid] for cid in customer_ids), dtype=np.int64)

    def mark(self, rows: np.ndarray, what: int) -> None:
        self.dirty[rows] |= what

    def dirty_rows(self) -> np.ndarray:
        """Slots changed since they were last written (:meth:`clean` forgets them)."""
        return np.flatnonzero(self.dirty[: len(self.ids)])

    def clean(self, rows: np.ndarray) -> None:
        self.dirty[rows] = 0

    def owned_rows(self, partitions: Iterable[int]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.partition[: len(self.ids)], list(partitions)))

    def release(self, partitions: Iterable[int]) -> None:
        """Forget the customers of revoked partitions (their next owner loads them from Redis)."""
        n = len(self.ids)
        keep = np.flatnonzero(~np.isin(self.partition[:n], list(partitions)))
        self.aggregates.keep(keep)
        for name in _STATE:
            setattr(self, name, getattr(self, name)[keep].copy())
        self.ids = [self.ids[row] for row in keep.tolist()]
        self.slot_of = {cid: row for row, cid in enumerate(self.ids)}
