"""Segments' popularity for readers that ask often: added up and ranked once, reused for a few seconds.

Why: popularity is kept per partition and per bucket of stock codes
(:mod:`shared.state.keys`), so one segment's popularity is sixteen hashes per
partition, several thousand (code, units) pairs to parse and add up. The API shows
recommendations with every customer view; summing them per request made that read
the whole cost of a request. Popularity moves with every batch, but a ranking a
second or two old recommends the same products, so the API keeps each segment's
ranking for ``ttl_s`` seconds (``SEG_API_POPULARITY_TTL_S``); the CLI tools, which
ask once, use ``ttl_s=0`` and always read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from shared.state.keys import PRODUCT_BUCKETS, Keys
from shared.state.popularity import Ranking, add_shares
from worker.queries.plan import Command, call


class PopularityCache:
    """Each segment's :class:`~shared.state.popularity.Ranking`, kept for ``ttl_s`` seconds (0: never kept)."""

    def __init__(self, ttl_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._kept: dict[int, tuple[float, Ranking]] = {}

    def fresh(self, segments: Iterable[int]) -> dict[int, Ranking]:
        """The rankings of ``segments`` read less than ``ttl_s`` seconds ago."""
        now = self._clock()
        kept = ((segment, self._kept.get(segment)) for segment in segments)
        return {segment: entry[1] for segment, entry in kept if entry is not None and now - entry[0] < self.ttl_s}

    @staticmethod
    def reads(keys: Keys, partitions: int, segments: Sequence[int]) -> list[Command]:
        """The commands that read ``segments``' shares, for :meth:`keep` (in this order)."""
        return [call("hgetall", key) for s in segments for p in range(partitions) for key in keys.products(p, s)]

    def keep(
        self, segments: Sequence[int], replies: Sequence[Mapping[str, str]], partitions: int
    ) -> dict[int, Ranking]:
        """Rank each segment from the replies of :meth:`reads`, and keep the rankings."""
        per_segment = partitions * PRODUCT_BUCKETS
        now = self._clock()
        out = {}
        for i, segment in enumerate(segments):
            out[segment] = ranking = Ranking.of(add_shares(replies[i * per_segment : (i + 1) * per_segment]))
            if self.ttl_s > 0:
                self._kept[segment] = (now, ranking)
        return out
