"""A customer's record in Redis (``{pn}:customer:{id}``): its format, written and read in one place.

The record has a bounded size: the aggregates (``a0`` … ``a3``: 192 packed bytes in
base64, see :data:`~shared.features.aggregates.PACKED`, and ``country``) and the
last scoring decision: ``segment`` (the assigned segment) with the features
(``f0``, ``f1``), vector (``v0``, ``v1``: twelve little-endian doubles each, in
base64) and ``as_of`` it was decided on; ``published`` (what consumers were told),
``published_at`` and ``seq`` (its event time and sequence number); ``pending``
(an inactivity switch being confirmed, ``segment:count``). Empty strings stand for
"none". Every value is at most 64 characters, so Redis keeps the record as a
listpack (a few hundred bytes) rather than a hash table. What grows with history
lives in the members hash.

The worker writes records column-wise (:func:`decision_columns`,
:meth:`~shared.features.aggregates.AggregateColumns.packed`) and loads a
partition's records in bulk, one script call per few thousand customers whose
reply numpy decodes at once (:func:`load_records`); tools and the API read one
(:func:`read_record`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import redis

from shared.features.aggregates import PACKED_FIELDS, PIECE, CustomerAggregates, unpack
from shared.features.clock import NO_TIME, iso
from shared.features.vector import FEATURE_NAMES
from shared.state.keys import Keys

NO_SEGMENT = -1
FEATURE_FIELDS = ("f0", "f1")
VECTOR_FIELDS = ("v0", "v1")
LOAD_FIELDS = (*PACKED_FIELDS, "country", "segment", "published", "published_at", "seq", "pending", "as_of")

# For the records of KEYS that exist: their KEYS positions (comma-separated), their packed
# aggregates concatenated (256 characters each), then one newline-separated column per
# other field of LOAD_FIELDS (no value holds a newline). Column-wise, so Python splits
# each column once and numpy decodes the aggregates at once.
_LOAD = (
    "local fields = {"
    + ", ".join(f"'{name}'" for name in LOAD_FIELDS)
    + "}\n"
    + """
local packed = #fields - 7
local rows, aggregates, columns = {}, {}, {}
for j = packed + 1, #fields do columns[j - packed] = {} end
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, unpack(fields))
  if v[1] then
    rows[#rows + 1] = i
    aggregates[#aggregates + 1] = table.concat(v, '', 1, packed)
    for j = packed + 1, #fields do
      local column = columns[j - packed]
      column[#column + 1] = v[j] or ''
    end
  end
end
local out = {table.concat(rows, ','), table.concat(aggregates)}
for j = 1, #columns do out[#out + 1] = table.concat(columns[j], '\\n') end
return out
"""
)

# A chunk of a partition's customer index: {next cursor, ids newline-separated}; one string
# per reply, because a client parses a reply of ten thousand elements one by one.
_INDEX = """
local reply = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
return {reply[1], table.concat(reply[2], '\\n')}
"""


def _pack_rows(matrix: np.ndarray, names: Sequence[str]) -> list[list[str]]:
    """Rows of doubles as base64 pieces of :data:`PIECE` characters, one piece per name."""
    text = base64.b64encode(np.ascontiguousarray(matrix, dtype="<f8").tobytes())
    pieces = np.frombuffer(text, dtype=f"S{PIECE}").reshape(len(matrix), len(names))
    return [[piece.decode() for piece in row] for row in pieces.tolist()]


def _unpack_row(fields: Mapping[str, str], names: Sequence[str]) -> list[float] | None:
    text = "".join(fields.get(name, "") for name in names)
    return np.frombuffer(base64.b64decode(text), dtype="<f8").tolist() if text else None


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
    decided = features is not None and vector is not None
    feature_rows = np.array([features], dtype=float) if decided else None
    vector_rows = np.array([vector], dtype=float) if decided else None
    columns = decision_columns(
        feature_rows, vector_rows, [as_of], [segment], [published], [published_at], [seq], [pending]
    )
    return {name: values[0] for name, values in columns.items()}


def decision_columns(
    features: np.ndarray | None,
    vectors: np.ndarray | None,
    as_of: Sequence[int],
    segment: Sequence[int],
    published: Sequence[int],
    published_at: Sequence[int],
    seq: Sequence[int],
    pending: Sequence[str],
) -> dict[str, list[str]]:
    """:func:`decision_fields` of many records, field by field; ``features``/``vectors``: one row per record,
    a row of NaN (or no matrix at all) for a record without a decision. Each distinct time is formatted once."""
    n = len(as_of)
    times = {at: iso(at) for at in {*as_of, *published_at}}
    columns = {name: [""] * n for name in (*FEATURE_FIELDS, *VECTOR_FIELDS)}
    if features is not None and vectors is not None:
        decided = np.flatnonzero(~np.isnan(features).any(axis=1))
        for matrix, names in ((features, FEATURE_FIELDS), (vectors, VECTOR_FIELDS)):
            for row, packed in zip(decided.tolist(), _pack_rows(matrix[decided], names), strict=True):
                for name, piece in zip(names, packed, strict=True):
                    columns[name][row] = piece
    return columns | {
        "as_of": [times[at] for at in as_of],
        "segment": [segment_text(s) for s in segment],
        "published": [segment_text(p) for p in published],
        "published_at": [times[when] for when in published_at],
        "seq": [str(number) for number in seq],
        "pending": list(pending),
    }


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
    def from_fields(cls, customer_id: str, fields: Mapping[str, str]) -> CustomerRecord:
        def time(name: str) -> datetime | None:
            return datetime.fromisoformat(fields[name]) if fields.get(name) else None

        features = _unpack_row(fields, FEATURE_FIELDS)
        return cls(
            customer_id=customer_id,
            aggregates=unpack(customer_id, fields),
            features=dict(zip(FEATURE_NAMES, features, strict=True)) if features is not None else None,
            vector=_unpack_row(fields, VECTOR_FIELDS),
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
class LoadedRecords:
    """Stored records of many customers as columns: what the worker needs to own them again.

    Not the features: the worker recomputes them. ``packed`` is the customers'
    :data:`~shared.features.aggregates.PACKED_FIELDS` texts, concatenated in order.
    """

    ids: list[str]
    packed: bytes
    countries: list[str]
    segment: np.ndarray
    published: np.ndarray
    published_at: np.ndarray
    seq: np.ndarray
    pending_segment: np.ndarray
    pending_count: np.ndarray
    as_of: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _segments(texts: Sequence[str]) -> np.ndarray:
    return np.array([text or NO_SEGMENT for text in texts], dtype=np.int64)


def _times(texts: Sequence[str]) -> np.ndarray:
    """ISO texts ("" for none) as µs, parsed in bulk."""
    parsed = np.array([text or "NaT" for text in texts], dtype="datetime64[us]")
    micros = parsed.astype(np.int64)
    micros[np.isnat(parsed)] = NO_TIME
    return micros


def _parse(ids: Sequence[str], reply: Sequence[str]) -> LoadedRecords:
    rows, packed, *columns = reply
    found = [ids[int(i) - 1] for i in rows.split(",")] if rows else []
    country, segment, published, published_at, seq, pending, as_of = (
        column.split("\n") if found else [] for column in columns
    )
    pending_segment = np.full(len(found), NO_SEGMENT, dtype=np.int64)
    pending_count = np.zeros(len(found), dtype=np.int64)
    for index, text in enumerate(pending):
        if text:
            pending_segment[index], pending_count[index] = pending_value(text)
    return LoadedRecords(
        ids=found,
        packed=packed.encode(),
        countries=country,
        segment=_segments(segment),
        published=_segments(published),
        published_at=_times(published_at),
        seq=np.array([text or 0 for text in seq], dtype=np.int64),
        pending_segment=pending_segment,
        pending_count=pending_count,
        as_of=_times(as_of),
    )


def load_records(client: redis.Redis, keys: Keys, partition: int, chunk: int = 5_000) -> Iterator[LoadedRecords]:
    """Every stored record of ``partition`` (from its index), in bulk: one script call per ``chunk`` customers.

    The next chunk's call runs in a helper thread while this one's reply is decoded,
    so Redis's work and Python's overlap (a million customers load in seconds).
    """
    script = client.register_script(_LOAD)

    def fetch(ids: list[str]) -> tuple[list[str], list[str]]:
        return ids, script(keys=[keys.customer(partition, cid) for cid in ids])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="load-records") as pool:
        ahead: Future[tuple[list[str], list[str]]] | None = None
        for ids in index_chunks(client, keys, partition):
            for start in range(0, len(ids), chunk):
                submitted = pool.submit(fetch, ids[start : start + chunk])
                if ahead is not None:
                    yield _parse(*ahead.result())
                ahead = submitted
        if ahead is not None:
            yield _parse(*ahead.result())


def index_chunks(client: redis.Redis, keys: Keys, partition: int, count: int = 10_000) -> Iterator[list[str]]:
    """The partition's customer index a chunk at a time (SSCAN: no single huge reply), each chunk sorted."""
    script = client.register_script(_INDEX)
    cursor = "0"
    while True:
        cursor, ids = script(keys=[keys.customers(partition)], args=[cursor, count])
        if ids:
            yield sorted(ids.split("\n"))
        if cursor == "0":
            return
