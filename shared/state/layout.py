"""How the state is laid out: the partition count the bootstrap seeded it for.

Why it matters: a customer's keys carry its partition's hash tag, computed from
its id and the number of partitions of the invoices topic. Everything that reads
or writes a customer (worker, tools, API) must use the same count; the bootstrap
records it, and a worker on a topic with another count stops with a message
instead of loading the wrong customers.
"""

from __future__ import annotations

from datetime import datetime

import orjson
import redis

from shared.exceptions import ModelError
from shared.state.keys import Keys

NO_STATE_HINT = "run python -m worker bootstrap --input FILE --until DATE first"


def bootstrap_meta(client: redis.Redis, keys: Keys) -> dict:
    """The last bootstrap's summary, or a :class:`ModelError` saying how to create one."""
    text = client.get(keys.bootstrap_meta)
    if text is None:
        raise ModelError(f"no bootstrapped state under Redis prefix {keys.prefix!r}: {NO_STATE_HINT}")
    return orjson.loads(text)


def partition_count(client: redis.Redis, keys: Keys) -> int:
    """The number of partitions the state is laid out for."""
    return int(bootstrap_meta(client, keys)["partitions"])


def partitions_in(meta: str | None, keys: Keys) -> int:
    """The partition count in a stored ``{model}:bootstrap`` text (for readers that fetched it themselves)."""
    if meta is None:
        raise ModelError(f"no bootstrapped state under Redis prefix {keys.prefix!r}: {NO_STATE_HINT}")
    return int(orjson.loads(meta)["partitions"])


def stream_clock(client: redis.Redis, keys: Keys) -> datetime | None:
    """The latest event time any partition's stream has reached (None before the first commit).

    What "now" is for a tool that scores customers outside the worker (a refresh, a benchmark).
    """
    partitions = partition_count(client, keys)
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.hget(keys.checkpoint(partition), "clock")
    clocks = [datetime.fromisoformat(text) for text in pipe.execute() if text]
    return max(clocks) if clocks else None


def worker_counters(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """The workers' counters (lines by kind, duplicates, sweeps, changes, …), summed over partitions."""
    partitions = partition_count(client, keys)
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.hgetall(keys.counters(partition))
    total: dict[str, int] = {}
    for counters in pipe.execute():
        for name, value in counters.items():
            total[name] = total.get(name, 0) + int(value)
    return total
