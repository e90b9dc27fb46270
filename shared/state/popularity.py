"""Product popularity per published segment, as readers see it: the partitions' shares added up.

Each partition keeps ``{pn}:products:{segment}:{b}`` (net units per stock code of its
customers whose published segment it is, one hash per bucket of stock codes),
written by that partition's batch commits; the segment's popularity is their sum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice

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


@dataclass(frozen=True)
class Ranking:
    """A segment's products with positive net units, most units first (ties: stock code descending).

    Sorted once, asked many times: each question skips the products it excludes.

    >>> Ranking.of({"A": 5, "B": 9, "C": 5, "D": -2}).top(2, exclude={"B"})
    [('C', 5), ('A', 5)]
    """

    order: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, units: dict[str, int]) -> Ranking:
        ranked = sorted(((n_units, code) for code, n_units in units.items() if n_units > 0), reverse=True)
        return cls(tuple((code, n_units) for n_units, code in ranked))

    def top(self, n: int, exclude: Container[str] = ()) -> list[tuple[str, int]]:
        """The first ``n`` products not in ``exclude``."""
        return list(islice(((code, units) for code, units in self.order if code not in exclude), max(n, 0)))


def rank(units: dict[str, int], n: int, exclude: Container[str] = ()) -> list[tuple[str, int]]:
    """The ``n`` products with the most positive net units, not in ``exclude`` (ties: stock code descending)."""
    return Ranking.of(units).top(n, exclude)


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
