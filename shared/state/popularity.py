"""Product popularity per published segment, as readers see it: the partitions' shares added up.

Each partition keeps ``{pn}:products:{segment}`` (net units per stock code of its
customers whose published segment it is), written by that partition's batch
commits; the segment's popularity is their sum.
"""

from __future__ import annotations

from collections import Counter

import redis

from shared.state.keys import Keys
from shared.state.layout import partition_count


def segment_products(client: redis.Redis, keys: Keys, segment: int) -> dict[str, int]:
    """Stock code -> net units of the segment's published members (zeros left out)."""
    partitions = partition_count(client, keys)
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.zrange(keys.products(partition, segment), 0, -1, withscores=True)
    total: Counter[str] = Counter()
    for members in pipe.execute():
        for code, units in members:
            total[code] += int(units)
    return {code: units for code, units in total.items() if units}


def top_products(client: redis.Redis, keys: Keys, segment: int, n: int) -> list[tuple[str, int]]:
    """The ``n`` products with the most positive net units (ties: stock code descending, as Redis orders them)."""
    ranked = sorted(
        ((units, code) for code, units in segment_products(client, keys, segment).items() if units > 0), reverse=True
    )
    return [(code, units) for units, code in ranked[:n]]
