"""What one step reads from Redis, in one pipeline round trip.

* which of the step's event ids were applied already (dedup, per partition and day);
* for each customer line, whether its invoice and (for purchases) its product
  are already among the customer's members, so distinct counts stay exact while
  the sets themselves stay in Redis;
* the live model version, the other partitions' statistics and the model's own
  (for the daily sweep's centroids).

The commit of the previous step may still be landing while this one reads
(:mod:`worker.stream.inflight`): what it adds is passed in as ``landing`` and
counts as already there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import redis

from shared.features.catalog import is_product
from shared.features.clock import from_micros
from shared.state.keys import Keys
from worker.stream.decode import Records

_IDS_PER_COMMAND = 5_000


@dataclass
class Landing:
    """What the commit in flight adds; Redis does not show it yet."""

    event_ids: set[str] = field(default_factory=set)
    invoices: set[tuple[str, str]] = field(default_factory=set)  # (customer, invoice)
    bought: set[tuple[str, str]] = field(default_factory=set)  # (customer, stock code)


@dataclass
class StepReads:
    seen: set[str]
    invoices: set[tuple[str, str]]
    bought: set[tuple[str, str]]
    model_version: int | None
    partition_stats: dict[int, dict[str, str]]
    model_stats: dict[str, str]


def event_day(micros: int) -> str:
    return from_micros(micros).date().isoformat()


def read_step(
    client: redis.Redis, keys: Keys, records: Records, partitions: Iterable[int], landing: Landing
) -> StepReads:
    """One round trip for everything the step needs to know (``partitions``: all of the topic's)."""
    ids_by_set: dict[tuple[int, str], list[str]] = defaultdict(list)
    for partition, moment, event_id in zip(
        records.partition.tolist(), records.time.tolist(), records.event_id, strict=True
    ):
        ids_by_set[(partition, event_day(moment))].append(event_id)
    fields_by_customer: dict[tuple[int, str], set[str]] = defaultdict(set)
    for partition, cid, invoice, code, price in zip(
        records.partition.tolist(),
        records.customer_id,
        records.invoice_no,
        records.stock_code,
        records.price.tolist(),
        strict=True,
    ):
        if cid is None or price <= 0 or not is_product(code):
            continue
        wanted = fields_by_customer[(partition, cid)]
        wanted.add("i:" + invoice)
        if not invoice.startswith("C"):
            wanted.add("p:" + code)
    pipe = client.pipeline(transaction=False)
    pipe.get(keys.model_current)
    pipe.hgetall(keys.model_stats)
    numbers = sorted(partitions)
    for partition in numbers:
        pipe.hgetall(keys.stats(partition))
    checks: list[list[str]] = []
    for (partition, day), ids in ids_by_set.items():
        for start in range(0, len(ids), _IDS_PER_COMMAND):
            chunk = ids[start : start + _IDS_PER_COMMAND]
            pipe.smismember(keys.seen(partition, day), chunk)
            checks.append(chunk)
    asked: list[tuple[str, list[str]]] = []
    for (partition, cid), names in fields_by_customer.items():
        wanted = sorted(names)
        pipe.hmget(keys.members(partition, cid), wanted)
        asked.append((cid, wanted))
    replies = pipe.execute()
    version, model_stats = replies[0], replies[1]
    stats = dict(zip(numbers, replies[2 : 2 + len(numbers)], strict=True))
    position = 2 + len(numbers)
    seen = set(landing.event_ids)
    for chunk, flags in zip(checks, replies[position : position + len(checks)], strict=True):
        seen.update(event_id for event_id, flag in zip(chunk, flags, strict=True) if flag)
    position += len(checks)
    invoices, bought = set(landing.invoices), set(landing.bought)
    for (cid, names), values in zip(asked, replies[position:], strict=True):
        for name, value in zip(names, values, strict=True):
            if value is None:
                continue
            if name.startswith("i:"):
                invoices.add((cid, name[2:]))
            elif int(value) % 2:
                bought.add((cid, name[2:]))
    return StepReads(
        seen=seen,
        invoices=invoices,
        bought=bought,
        model_version=int(version) if version is not None else None,
        partition_stats={p: raw for p, raw in stats.items() if raw},
        model_stats=model_stats,
    )


def complete_stats(raw: Mapping[int, Mapping[str, str]], partitions: Iterable[int], version: int) -> bool:
    """Whether every one of ``partitions`` has statistics under model ``version``."""
    return all(raw.get(p, {}).get("version") == str(version) for p in partitions)
