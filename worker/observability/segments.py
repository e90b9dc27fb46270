"""Segment sizes of the customers a worker owns, read at scrape time."""

from __future__ import annotations

from collections import Counter

from worker.observability.metrics import SegmentSizes
from worker.stream.processor import Processor

STATES = ("assigned", "published")


def segment_sizes(processor: Processor) -> SegmentSizes:
    """Customers per segment, by assigned (nearest centroid) and by published segment.

    Runs on the HTTP thread while the loop changes the customers: the records are
    copied in one step (atomic under the GIL) before counting. Every segment of
    the model is reported, with 0 when empty; customers not scored yet count as
    segment ``none``, so each state sums to the customers owned.
    """
    model = processor.model
    states = list(processor.customers.values())
    sizes: Counter[tuple[str, str, str]] = Counter(
        {(str(segment), name, state): 0 for segment, name in model.names.items() for state in STATES}
    )
    for customer in states:
        for state, segment in zip(STATES, (customer.segment, customer.published), strict=True):
            if segment is None:
                sizes["none", "unscored", state] += 1
            else:
                sizes[str(segment), model.names.get(segment, "unknown"), state] += 1
    return sizes
