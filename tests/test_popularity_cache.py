"""The API's popularity cache: a ranking is reused for its TTL, then read again; TTL 0 never keeps one."""

from __future__ import annotations

from shared.state.keys import PRODUCT_BUCKETS, Keys
from shared.state.popularity import rank
from worker.queries.popularity import PopularityCache

KEYS = Keys("t:")
PARTITIONS = 2


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def replies(units: dict[str, int]) -> list[dict[str, str]]:
    """What the reads of one segment answer: ``units`` split over the partitions' first buckets."""
    out: list[dict[str, str]] = [{} for _ in range(PARTITIONS * PRODUCT_BUCKETS)]
    for i, (code, n) in enumerate(units.items()):
        out[i % len(out)][code] = str(n)
    return out


def test_a_ranking_is_reused_for_its_ttl_then_read_again() -> None:
    clock = Clock()
    cache = PopularityCache(2.0, clock)
    reads = cache.reads(KEYS, PARTITIONS, [3])
    assert len(reads) == PARTITIONS * PRODUCT_BUCKETS and {r.name for r in reads} == {"hgetall"}
    assert cache.fresh([3]) == {}
    units = {"A": 5, "B": 9, "C": 5, "D": -2}
    kept = cache.keep([3], replies(units), PARTITIONS)
    assert kept[3].top(10, exclude={"C"}) == rank(units, 10, exclude={"C"}) == [("B", 9), ("A", 5)]
    clock.now += 1.9
    assert cache.fresh([3, 4]) == kept
    clock.now += 0.2
    assert cache.fresh([3]) == {}


def test_ttl_zero_never_keeps() -> None:
    cache = PopularityCache(0.0, Clock())
    cache.keep([1, 2], replies({"A": 1}) + replies({"B": 2}), PARTITIONS)
    assert cache.fresh([1, 2]) == {}
