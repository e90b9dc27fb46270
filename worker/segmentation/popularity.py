"""Product popularity per published segment: what one batch adds to ``segment:{id}:products``.

Each sorted set holds, per stock code, the net units (returns negative) of the
product lines of the customers whose *published* segment it is: consumers see
published segments, so popularity follows them. Deltas are netted per (segment,
product) as the batch is applied, so the batch commit sends one ZINCRBY per pair,
whatever the number of lines:

* a product line adds its units to the customer's published segment at that
  moment (a customer not yet published counts nowhere);
* when a customer's published segment changes (purchase, inactivity, model
  refresh), all its units so far, the lines just folded included, move from the
  old segment to the new one.

Both together leave each segment with exactly its members' units at the end of
the batch, however many times a customer moves within it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SegmentDeltas = dict[int, dict[str, int]]  # segment -> stock code -> net units


def _segment_totals(totals: SegmentDeltas, segment: int) -> dict[str, int]:
    target = totals.get(segment)
    if target is None:
        target = totals[segment] = {}
    return target


def add_units(totals: SegmentDeltas, segment: int, units: Mapping[str, int], sign: int = 1) -> None:
    """Add (``sign=1``) or take out (``-1``) a customer's units per stock code to its segment's totals."""
    target = _segment_totals(totals, segment)
    for code, quantity in units.items():
        target[code] = target.get(code, 0) + sign * quantity


def nonzero(totals: Mapping[int, Mapping[str, int]]) -> SegmentDeltas:
    """The totals without zeros, and without segments left empty."""
    out = {segment: {code: n for code, n in counts.items() if n} for segment, counts in totals.items()}
    return {segment: counts for segment, counts in out.items() if counts}


@dataclass
class PopularityChanges:
    """What the batch being applied does to the segments' product popularity.

    The processor reports every folded product line (:meth:`line`) and every
    publish (:meth:`moved`); :meth:`take` hands out the batch's deltas.
    """

    totals: SegmentDeltas = field(default_factory=dict)

    def line(self, published: int | None, stock_code: str, quantity: int) -> None:
        """A product line of a customer whose published segment is ``published``."""
        if published is not None:
            target = _segment_totals(self.totals, published)
            target[stock_code] = target.get(stock_code, 0) + quantity

    def moved(self, units: Mapping[str, int], before: int | None, after: int) -> None:
        """A customer's published segment changes from ``before`` to ``after``; ``units`` are all its units now."""
        if before is not None:
            add_units(self.totals, before, units, -1)
        add_units(self.totals, after, units)

    def take(self) -> SegmentDeltas:
        """The batch's net units per (segment, stock code), without zeros; starts the next batch."""
        deltas = nonzero(self.totals)
        self.totals = {}
        return deltas
