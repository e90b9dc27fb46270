"""Write the bootstrap state to Redis: customer hashes, the customer set, guest statistics,
product popularity per segment.

Every key is overwritten (never incremented), so seeding the same inputs twice
leaves Redis byte-identical. Writes are pipelined, one MULTI/EXEC per batch of
customers. The record format is the worker's own (:class:`CustomerState`), so
both write the same bytes. Customers with aggregates but no purchase yet (only
cancellations or fees) get empty features, vector and segment.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import redis

from shared.features.aggregates import CustomerAggregates, GuestStats
from shared.state.customer_record import CustomerState
from shared.state.keys import Keys
from worker.segmentation.popularity import SegmentDeltas, add_units, nonzero


@dataclass(frozen=True)
class SeedReport:
    customers_written: int
    scored: int
    stale_removed: int


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed_customers(
    client: redis.Redis,
    keys: Keys,
    aggregates: dict[str, CustomerAggregates],
    features: pd.DataFrame,
    vectors: np.ndarray,
    segments: np.ndarray,
    as_of: datetime,
    batch_size: int,
) -> SeedReport:
    """Replace every customer record with the seed and drop records the seed does not contain.

    ``features``, ``vectors`` and ``segments`` are row-aligned (index = customer id).
    """
    scored = {
        customer: (row, vectors[index], int(segments[index]))
        for index, (customer, row) in enumerate(zip(features.index, features.to_dict("records"), strict=True))
    }
    customers = sorted(aggregates)
    for batch in _batches(customers, batch_size):
        with client.pipeline(transaction=True) as pipe:
            for customer in batch:
                features_row, vector, segment = scored.get(customer, (None, None, None))
                record = CustomerState(aggregates[customer], features_row, as_of, vector, segment, segment, seq=0)
                pipe.delete(keys.customer(customer))
                pipe.hset(keys.customer(customer), mapping=record.fields())
            pipe.sadd(keys.customers, *batch)
            pipe.execute()
    stale = sorted(set(client.smembers(keys.customers)) - set(customers))
    for batch in _batches(stale, batch_size):
        with client.pipeline(transaction=True) as pipe:
            pipe.delete(*(keys.customer(customer) for customer in batch))
            pipe.srem(keys.customers, *batch)
            pipe.execute()
    return SeedReport(customers_written=len(customers), scored=len(scored), stale_removed=len(stale))


def seed_guests(client: redis.Redis, keys: Keys, guests: GuestStats, batch_size: int = 10_000) -> None:
    """Replace the guest statistics in one transaction."""
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.guests, keys.guest_invoices)
        pipe.hset(keys.guests, mapping={"lines": str(guests.lines), "amount": repr(guests.amount)})
        for batch in _batches(sorted(guests.invoices), batch_size):
            pipe.sadd(keys.guest_invoices, *batch)
        pipe.execute()


def seed_segment_products(
    client: redis.Redis, keys: Keys, aggregates: dict[str, CustomerAggregates], published: Mapping[str, int]
) -> int:
    """Replace every ``segment:{id}:products`` with the seeded customers' net units per published segment.

    The same rule as the worker's (:mod:`worker.segmentation.popularity`): a customer adds
    its product units to its published segment; zeros are left out. Sets of
    segments that have no member now are deleted. Returns how many sets were written.
    """
    totals: SegmentDeltas = {}
    for customer, segment in published.items():
        add_units(totals, segment, aggregates[customer].product_units)
    seeded = nonzero(totals)
    with client.pipeline(transaction=True) as pipe:
        stale = list(client.scan_iter(match=keys.segment_products_pattern, count=1_000))
        if stale:
            pipe.delete(*stale)
        for segment, units in seeded.items():
            pipe.zadd(keys.segment_products(segment), units)
        pipe.execute()
    return len(seeded)
