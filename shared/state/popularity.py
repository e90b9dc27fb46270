"""Product popularity per published segment, as readers see it: the partitions' shares added up.

Each partition keeps ``{pn}:products:{segment}:{b}`` (net units per stock code of its
customers whose published segment it is, one hash per bucket of stock codes),
written by that partition's batch commits; the segment's popularity is their sum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterable, Mapping

import redis

from shared.state.keys import Keys
from shared.state.layout import partition_count


def add_shares(shares: Iterable[Mapping[str, str]]) -> dict[str, int]:
    """Stock code -> net units, the ``HGETALL`` replies of the partitions' buckets added up (zeros left out)."""
    total: Counter[str] = Counter()
    for bucket in shares:
        for code, units in bucket.items():
            total[code] += int(units)
    return {code: units for code, units in total.items() if units}


def rank(units: dict[str, int], n: int, exclude: Container[str] = ()) -> list[tuple[str, int]]:
    """The ``n`` products with the most positive net units, not in ``exclude`` (ties: stock code descending)."""
    ranked = sorted(
        ((n_units, code) for code, n_units in units.items() if n_units > 0 and code not in exclude), reverse=True
    )
    return [(code, n_units) for n_units, code in ranked[:n]]


def segment_products(client: redis.Redis, keys: Keys, segment: int) -> dict[str, int]:
    """Stock code -> net units of the segment's published members (zeros left out)."""
    partitions = partition_count(client, keys)
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        for key in keys.products(partition, segment):
            pipe.hgetall(key)
    return add_shares(pipe.execute())


def top_products(client: redis.Redis, keys: Keys, segment: int, n: int) -> list[tuple[str, int]]:
    """The ``n`` products with the most positive net units (ties: stock code descending)."""
    return rank(segment_products(client, keys, segment), n)
