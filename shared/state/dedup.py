"""How an event id is remembered for dropping duplicates: a 64-bit digest in one of sixteen integer sets.

Why a digest: the dedup sets of the last days hold every event id of a partition.
Stored as they come (32 hex characters from the replay producer, up to the
contract's maximum from others), each costs about 87 bytes in a Redis hash-table
set. Stored as signed 64-bit integers in sets of at most 512 members, Redis keeps
each set an *intset*: 8 bytes per id. The sixteen sets of a partition's day
(``{pn}:seen:{day}:{b}``) are picked by the digest's low bits, so each stays small
on the busiest day of the real year. The digest is the dedup identity all
along the worker (its read, its repeats within a step, what a commit in flight
adds), computed once per record per step. Two different ids share a digest with
probability 2⁻⁶⁴ per pair: with a million ids in a day's sets, a new id is taken
for a duplicate about once in 10¹³ ids.

>>> entry("a")
(0, '3405396810240292928')
>>> buckets, members = entry_columns(["a", "b", "a"])
>>> buckets.tolist(), members
([0, 4, 0], ['3405396810240292928', '8453121595177857668', '3405396810240292928'])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import blake2b

import numpy as np

SEEN_BUCKETS = 16


def entry(event_id: str) -> tuple[int, str]:
    """The set (bucket: the digest's low bits) and the member an event id is remembered as."""
    digest = int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little", signed=True)
    return digest % SEEN_BUCKETS, str(digest)


def entry_columns(event_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """:func:`entry` of each id, as a column of buckets and one of members (what a batch decodes into).

    Only the hash runs per id; the digests are read as one little-endian int64 array,
    so buckets and members come from numpy (``%`` rounds towards minus infinity, as Python's).
    """
    digests = np.frombuffer(b"".join([blake2b(i.encode(), digest_size=8).digest() for i in event_ids]), dtype="<i8")
    return digests % SEEN_BUCKETS, list(map(str, digests.tolist()))


def by_bucket(remembered: Iterable[tuple[int, str]]) -> dict[int, list[str]]:
    """The members of ``remembered`` entries per bucket, for a commit."""
    out: dict[int, list[str]] = {}
    for bucket, member in remembered:
        out.setdefault(bucket, []).append(member)
    return out
