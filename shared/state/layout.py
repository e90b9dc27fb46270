"""How the state is laid out: the partition count the bootstrap seeded it for.

Why it matters: a customer's keys carry its partition's hash tag, computed from
its id and the number of partitions of the invoices topic. Everything that reads
or writes a customer (worker, tools, API) must use the same count; the bootstrap
records it, and a worker on a topic with another count stops with a message
instead of loading the wrong customers.
"""

from __future__ import annotations

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
