"""Reading customers outside the worker: one by id, or all of them partition by partition.

Tools, the API, a refresh and benchmarks read through here; the worker loads its
partitions in bulk itself (:func:`shared.state.customer_record.load_records`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import redis

from shared.partitioner import partition_of
from shared.state.customer_record import CustomerRecord
from shared.state.keys import Keys
from shared.state.layout import partition_count


def find_record(client: redis.Redis, keys: Keys, customer_id: str) -> CustomerRecord | None:
    """The customer's record, from its own partition, or None when it has none."""
    partition = partition_of(customer_id, partition_count(client, keys))
    fields = client.hgetall(keys.customer(partition, customer_id))
    return CustomerRecord.from_fields(customer_id, fields) if fields else None


def iter_fields(
    client: redis.Redis, keys: Keys, fields: Sequence[str], chunk: int = 1_000
) -> Iterator[tuple[str, int, list[str | None]]]:
    """(customer id, partition, values of ``fields``) of every customer, partition by partition, sorted by id."""
    for partition in range(partition_count(client, keys)):
        ids = sorted(client.smembers(keys.customers(partition)))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            pipe = client.pipeline(transaction=False)
            for cid in part:
                pipe.hmget(keys.customer(partition, cid), list(fields))
            for cid, values in zip(part, pipe.execute(), strict=True):
                yield cid, partition, values


def product_units(client: redis.Redis, keys: Keys, customer_id: str) -> dict[str, tuple[int, bool]]:
    """Stock code -> (net units, bought) of one customer (its members hash)."""
    partition = partition_of(customer_id, partition_count(client, keys))
    return units_of(client.hgetall(keys.members(partition, customer_id)))


def units_of(members: Mapping[str, str]) -> dict[str, tuple[int, bool]]:
    """Stock code -> (net units, bought) from a members hash as read (``p:{code}`` = 2 × units + bought)."""
    out = {}
    for name, value in members.items():
        if name.startswith("p:"):
            number = int(value)
            bought = number % 2
            out[name[2:]] = ((number - bought) // 2, bool(bought))
    return out
