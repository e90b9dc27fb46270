"""The customers a worker owns, held in memory while it owns their partitions.

Why in memory: the worker is the only writer of its partitions' customers (the
batch commit fences others out), so the copy is authoritative; reads cost no
round trip, and the inactivity sweep can re-score every idle customer at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson
import redis

from shared.features.aggregates import CustomerAggregates
from shared.partitioner import partition_of
from shared.state.keys import Keys


@dataclass
class CustomerState:
    """A customer's record; ``vector`` is what the model statistics count it as."""

    aggregates: CustomerAggregates
    features: dict[str, float] | None = None
    as_of: datetime | None = None
    vector: np.ndarray | None = None
    segment: int | None = None
    published: int | None = None
    published_at: datetime | None = None  # event time of the last published change
    seq: int = 0

    def fields(self, with_aggregates: bool = True) -> dict[str, str]:
        """The Redis hash fields of this record (empty strings where unset).

        A re-score without new events (a sweep) leaves the aggregates as they are,
        so ``with_aggregates=False`` skips their (largest) field.
        """
        aggregates = {"agg": self.aggregates.to_json()} if with_aggregates else {}
        return aggregates | {
            "features": orjson.dumps(self.features, option=orjson.OPT_SERIALIZE_NUMPY).decode()
            if self.features is not None
            else "",
            "as_of": self.as_of.isoformat() if self.as_of else "",
            "vector": orjson.dumps(self.vector.tolist()).decode() if self.vector is not None else "",
            "segment": "" if self.segment is None else str(self.segment),
            "published": "" if self.published is None else str(self.published),
            "published_at": self.published_at.isoformat() if self.published_at else "",
            "seq": str(self.seq),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> CustomerState:
        def optional_int(name: str) -> int | None:
            value = fields.get(name, "")
            return int(value) if value else None

        return cls(
            aggregates=CustomerAggregates.from_json(fields["agg"]),
            features=orjson.loads(fields["features"]) if fields.get("features") else None,
            as_of=datetime.fromisoformat(fields["as_of"]) if fields.get("as_of") else None,
            vector=np.array(orjson.loads(fields["vector"])) if fields.get("vector") else None,
            segment=optional_int("segment"),
            published=optional_int("published"),
            published_at=datetime.fromisoformat(fields["published_at"]) if fields.get("published_at") else None,
            seq=int(fields.get("seq") or 0),
        )


def load_customers(
    client: redis.Redis, keys: Keys, partitions: Iterable[int], partition_count: int, chunk: int = 1_000
) -> dict[str, CustomerState]:
    """Every stored customer whose key falls in ``partitions``; pipelined by chunks."""
    wanted = set(partitions)
    ids = [cid for cid in client.smembers(keys.customers) if partition_of(cid, partition_count) in wanted]
    loaded: dict[str, CustomerState] = {}
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        pipe = client.pipeline(transaction=False)
        for cid in part:
            pipe.hgetall(keys.customer(cid))
        for cid, fields in zip(part, pipe.execute(), strict=True):
            if fields:
                loaded[cid] = CustomerState.from_fields(fields)
    return loaded
