"""Product popularity per published segment: what one batch adds to ``segment:{id}:products``.

Each sorted set holds, per stock code, the net units (returns negative) of the
product lines of the customers whose *published* segment it is: consumers see
published segments, so popularity follows them. A batch changes it in two ways:

* a customer whose published segment is the same after the batch as before it
  adds the units of its lines folded in the batch to that segment;
* a customer whose published segment changed (purchase, inactivity, model refresh)
  takes its units as they were before the batch out of the old segment and puts
  all its units now into the new one.

A customer without a published segment contributes nothing until its first
publish, which brings all its units. The deltas are netted per (segment,
product) here, so the batch commit sends one ZINCRBY per pair, whatever the
number of lines.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.stream.customers import CustomerState

SegmentDeltas = dict[int, dict[str, int]]


def add_units(totals: defaultdict[int, Counter[str]], segment: int, units: Mapping[str, int], sign: int = 1) -> None:
    """Add (``sign=1``) or take out (``-1``) a customer's units per stock code to its segment's totals."""
    target = totals[segment]
    for code, quantity in units.items():
        target[code] += sign * quantity


def nonzero(totals: Mapping[int, Counter[str]]) -> SegmentDeltas:
    """The totals without zeros, and without segments left empty."""
    out = {segment: {code: n for code, n in counts.items() if n} for segment, counts in totals.items()}
    return {segment: counts for segment, counts in out.items() if counts}


@dataclass
class PopularityChanges:
    """What the batch being applied does to the segments' product popularity.

    The processor reports every folded product line (:meth:`line`) and every
    publish (:meth:`published`); :meth:`take` turns them into the batch's deltas.
    """

    folded: dict[str, Counter[str]] = field(default_factory=dict)
    published_before: dict[str, int | None] = field(default_factory=dict)

    def line(self, customer_id: str, stock_code: str, quantity: int) -> None:
        counts = self.folded.get(customer_id)
        if counts is None:
            counts = self.folded[customer_id] = Counter()
        counts[stock_code] += quantity

    def published(self, customer_id: str, previous: int | None) -> None:
        """The customer's published segment is about to change from ``previous`` (first change of the batch counts)."""
        self.published_before.setdefault(customer_id, previous)

    def take(self, customers: Mapping[str, CustomerState]) -> SegmentDeltas:
        """The batch's net units per (segment, stock code), without zeros; starts the next batch."""
        totals: defaultdict[int, Counter[str]] = defaultdict(Counter)
        for cid, before in self.published_before.items():
            state = customers[cid]
            if before == state.published:
                continue
            units = state.aggregates.product_units
            if before is not None:
                add_units(totals, before, units, -1)
                add_units(totals, before, self.folded.get(cid, {}))
            if state.published is not None:
                add_units(totals, state.published, units)
        for cid, counts in self.folded.items():
            segment = customers[cid].published
            if segment is not None and self.published_before.get(cid, segment) == segment:
                add_units(totals, segment, counts)
        self.folded = {}
        self.published_before = {}
        return nonzero(totals)
