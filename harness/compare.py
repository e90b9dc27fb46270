"""What two runs of the pipeline can be compared by: the Redis state the stream decides, key by key, and the
segment changes as published, byte for byte.

The tests (exactness, event time, faults) and the benchmarks (determinism, chaos) compare a run with a
calm or differently batched one through these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

import orjson
import redis

from shared.kafka_clients import read_to_end
from shared.settings import Settings
from shared.state.keys import Keys


def raw_changes(settings: Settings) -> Iterator[tuple[str, int, bytes]]:
    """(customer, sequence, exact value bytes) of every message on the segment-change topic."""
    for record in read_to_end(settings.kafka, settings.topics.segment_changes):
        event = orjson.loads(record.value)
        yield event["customer_id"], event["sequence"], bytes(record.value)


def unique_changes(settings: Settings) -> dict[str, list[bytes]]:
    """Each customer's segment changes in sequence order, each sequence once, as the exact bytes published.

    A repeat (the same customer and sequence sent again after a crash) must carry the
    same bytes: two payloads under one sequence raise ``ValueError``.
    """
    by_customer: dict[str, dict[int, bytes]] = defaultdict(dict)
    for customer, sequence, value in raw_changes(settings):
        if by_customer[customer].setdefault(sequence, value) != value:
            raise ValueError(f"customer {customer}: two payloads published under sequence {sequence}")
    return {customer: [events[s] for s in sorted(events)] for customer, events in by_customer.items()}


def state(client: redis.Redis, keys: Keys, partitions: int) -> dict[str, object]:
    """Everything the stream decides, by key: customer records and members, popularity, guests, statistics,
    dedup sets and where each partition stands.

    Left out are what depends on who ran when: owner epochs, counters of redelivered
    records and batches, and the outboxes (messages on their way).
    """
    out: dict[str, object] = {}
    for partition in range(partitions):
        checkpoint = client.hgetall(keys.checkpoint(partition))
        out[keys.checkpoint(partition)] = {
            k: v for k, v in checkpoint.items() if k in ("offset", "clock", "swept", "pass")
        }
        out[keys.guests(partition)] = client.hgetall(keys.guests(partition))
        out[keys.stats(partition)] = client.hgetall(keys.stats(partition))
        ids = sorted(client.smembers(keys.customers(partition)))
        out[keys.customers(partition)] = ids
        pipe = client.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(keys.customer(partition, cid))
            pipe.hgetall(keys.members(partition, cid))
        replies = pipe.execute()
        for i, cid in enumerate(ids):
            out[keys.customer(partition, cid)] = replies[2 * i]
            out[keys.members(partition, cid)] = replies[2 * i + 1]
        for pattern in ("products", "seen", "guest-invoices", "stats"):
            for key in sorted(client.scan_iter(match=f"{keys.tag(partition)}:{pattern}:*", count=1000)):
                out[key] = _value(client, key)
    return out


def _value(client: redis.Redis, key: str) -> object:
    kind = client.type(key)
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "hash":
        return client.hgetall(key)
    return sorted(client.smembers(key))


def differences(left: dict[str, object], right: dict[str, object], prefix_left: str, prefix_right: str) -> list[str]:
    """Keys (without their prefix) whose values differ between two :func:`state` dumps."""
    a = {key.removeprefix(prefix_left): value for key, value in left.items()}
    b = {key.removeprefix(prefix_right): value for key, value in right.items()}
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))
