"""A customer's record in Redis (``{pn}:customer:{id}``): its format, written and read in one place.

The record has a bounded size: the aggregates (``agg``, see
:class:`~shared.features.aggregates.CustomerAggregates`) and the last scoring
decision: ``segment`` (the assigned segment) with the ``features``, ``vector``
and ``as_of`` it was decided on; ``published`` (what consumers were told),
``published_at`` and ``seq`` (its event time and sequence number); ``pending``
(an inactivity switch being confirmed, ``segment:count``). Empty strings stand for
"none". What grows with history lives in the members hash
(:mod:`shared.state.members`).

The worker writes records column-wise (:func:`decision_fields`) and loads a
partition's records in bulk with one script call per few thousand customers
(:func:`load_records`); tools and the API read one (:func:`read_record`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson
import redis

from shared.features.aggregates import CustomerAggregates
from shared.features.clock import NO_TIME, from_iso, iso
from shared.features.vector import FEATURE_NAMES
from shared.state.keys import Keys

NO_SEGMENT = -1
LOAD_FIELDS = ("agg", "segment", "published", "published_at", "seq", "pending", "as_of")

# Returns one JSON array per call: [[customer id, agg, segment, published, published_at, seq, pending, as_of], ...]
# for the records that exist. Built inside Redis so a bulk load is one reply and one parse.
_LOAD = """
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'agg', 'segment', 'published', 'published_at', 'seq', 'pending', 'as_of')
  if v[1] then
    local parts = {cjson.encode(ARGV[i]), v[1]}
    for j = 2, 7 do parts[#parts + 1] = cjson.encode(v[j] or '') end
    out[#out + 1] = '[' .. table.concat(parts, ',') .. ']'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""


def segment_text(segment: int) -> str:
    return "" if segment == NO_SEGMENT else str(segment)


def segment_value(text: str) -> int:
    return int(text) if text else NO_SEGMENT


def pending_text(segment: int, count: int) -> str:
    return "" if segment == NO_SEGMENT else f"{segment}:{count}"


def pending_value(text: str) -> tuple[int, int]:
    if not text:
        return NO_SEGMENT, 0
    segment, count = text.split(":")
    return int(segment), int(count)


def decision_fields(
    features: Sequence[float] | None,
    vector: Sequence[float] | None,
    as_of: int,
    segment: int,
    published: int,
    published_at: int,
    seq: int,
    pending: str,
) -> dict[str, str]:
    """The decision part of a record (everything but ``agg``), times in µs."""
    if features is None or vector is None:
        return decision_rows(None, None, [as_of], [segment], [published], [published_at], [seq], [pending])[0]
    matrices = np.array([features], dtype=float), np.array([vector], dtype=float)
    return decision_rows(*matrices, [as_of], [segment], [published], [published_at], [seq], [pending])[0]


def _json_rows(matrix: np.ndarray) -> list[str]:
    """Each row of a float matrix as its JSON array's inner text (``1.5,2.0``): one dump for all rows."""
    if not len(matrix):
        return []
    text = orjson.dumps(matrix.tolist()).decode()
    return text[2:-2].split("],[")  # numbers hold no brackets


_FEATURES_JSON = "{{" + ",".join(f'"{name}":{{}}' for name in FEATURE_NAMES) + "}}"


def decision_rows(
    features: np.ndarray | None,
    vectors: np.ndarray | None,
    as_of: Sequence[int],
    segment: Sequence[int],
    published: Sequence[int],
    published_at: Sequence[int],
    seq: Sequence[int],
    pending: Sequence[str],
) -> list[dict[str, str]]:
    """:func:`decision_fields` of many records at once; ``features``/``vectors``: one row per record, a row of
    NaN (or no matrix at all) for a record without a decision. Each distinct time is formatted once."""
    n = len(as_of)
    times = {at: iso(at) for at in {*as_of, *published_at}}
    feature_texts, vector_texts = [""] * n, [""] * n
    if features is not None and vectors is not None:
        decided = np.flatnonzero(~np.isnan(features).any(axis=1)).tolist()
        for row, inner in zip(decided, _json_rows(features[decided]), strict=True):
            feature_texts[row] = _FEATURES_JSON.format(*inner.split(","))
        for row, inner in zip(decided, _json_rows(vectors[decided]), strict=True):
            vector_texts[row] = f"[{inner}]"
    return [
        {
            "features": f,
            "vector": v,
            "as_of": times[at],
            "segment": segment_text(s),
            "published": segment_text(p),
            "published_at": times[when],
            "seq": str(number),
            "pending": waiting,
        }
        for f, v, at, s, p, when, number, waiting in zip(
            feature_texts, vector_texts, as_of, segment, published, published_at, seq, pending, strict=True
        )
    ]


@dataclass(frozen=True)
class CustomerRecord:
    """One customer's record as read back (tools, API, tests)."""

    customer_id: str
    aggregates: CustomerAggregates
    features: dict[str, float] | None
    vector: list[float] | None
    as_of: datetime | None
    segment: int
    published: int
    published_at: datetime | None
    seq: int
    pending: tuple[int, int]

    @classmethod
    def from_fields(cls, customer_id: str, fields: dict[str, str]) -> CustomerRecord:
        def time(name: str) -> datetime | None:
            return datetime.fromisoformat(fields[name]) if fields.get(name) else None

        return cls(
            customer_id=customer_id,
            aggregates=CustomerAggregates.from_json(customer_id, fields["agg"]),
            features=orjson.loads(fields["features"]) if fields.get("features") else None,
            vector=orjson.loads(fields["vector"]) if fields.get("vector") else None,
            as_of=time("as_of"),
            segment=segment_value(fields.get("segment", "")),
            published=segment_value(fields.get("published", "")),
            published_at=time("published_at"),
            seq=int(fields.get("seq") or 0),
            pending=pending_value(fields.get("pending", "")),
        )


def read_record(client: redis.Redis, keys: Keys, partition: int, customer_id: str) -> CustomerRecord | None:
    fields = client.hgetall(keys.customer(partition, customer_id))
    return CustomerRecord.from_fields(customer_id, fields) if fields else None


@dataclass(frozen=True)
class LoadedRecord:
    """What the worker needs of a stored record to own the customer again (not its features: it recomputes)."""

    customer_id: str
    agg: dict
    segment: int
    published: int
    published_at: int
    seq: int
    pending: tuple[int, int]
    as_of: int


def load_records(
    client: redis.Redis, keys: Keys, partition: int, customer_ids: Sequence[str], chunk: int = 5_000
) -> Iterator[LoadedRecord]:
    """The stored records of ``customer_ids`` (those that exist), in bulk: one script call per ``chunk``."""
    script = client.register_script(_LOAD)
    for start in range(0, len(customer_ids), chunk):
        ids = list(customer_ids[start : start + chunk])
        reply = script(keys=[keys.customer(partition, cid) for cid in ids], args=ids)
        for cid, agg, segment, published, published_at, seq, pending, as_of in orjson.loads(reply):
            yield LoadedRecord(
                customer_id=cid,
                agg=agg,
                segment=segment_value(segment),
                published=segment_value(published),
                published_at=from_iso(published_at),
                seq=int(seq or 0),
                pending=pending_value(pending),
                as_of=from_iso(as_of) if as_of else NO_TIME,
            )
