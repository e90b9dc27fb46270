"""Write the bootstrap state to Redis, partition by partition, in the worker's own layout.

Per partition of the invoices topic (``{pn}`` keys, :mod:`shared.state.keys`): the
customer records (aggregates and the bootstrap's decision: features, vector,
segment, all as of the cutoff), the members hashes (invoices, products with net
units and a bought flag), the customer index, guest statistics and product
popularity per published segment. Records are built column-wise
(:mod:`worker.bootstrap.seed_records`) and written by one script call per chunk of
customers (500 by default), which replaces each customer's two keys atomically.

A re-seed replaces everything a worker wrote: stale customers are removed, each
partition's stream position (offset, clock, sweep, statistics, dedup sets,
outboxes) is cleared so the workers replay the topic from its start (lines before
the cutoff are skipped), and the sequence generation moves on, so sequence
numbers published after the re-seed are larger than any published before.
Seeding the same inputs twice leaves the same state.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pandas as pd
import redis

from shared.features.aggregates import GuestStats
from shared.features.fold import NON_PRODUCT
from shared.partitioner import partition_of
from shared.state.guests import pounds, total_nanos
from shared.state.keys import PRODUCT_BUCKETS, Keys, product_bucket
from worker.bootstrap.batch_aggregates import kind_codes
from worker.bootstrap.seed_records import SeedRecords

_CLEARED = ("offset", "clock", "swept")


@dataclass(frozen=True)
class SeedReport:
    customers_written: int
    scored: int
    stale_removed: int


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# KEYS: the partition's customer index, then each customer's record and members keys.
# ARGV[1]: JSON, per customer [id, record field/value pairs, members field/value pairs]
# (one argument: encoding thousands of small arguments costs the client more than Redis).
# No Lua unpack passes more than 500 values.
_SEED = """
local customers = cjson.decode(ARGV[1])
local function chunked(command, key, values)
  for i = 1, #values, 500 do
    redis.call(command, key, unpack(values, i, math.min(i + 499, #values)))
  end
end
local ids = {}
for c, customer in ipairs(customers) do
  local record, members = KEYS[2 * c], KEYS[2 * c + 1]
  ids[c] = customer[1]
  redis.call('DEL', record)
  redis.call('DEL', members)
  chunked('HSET', record, customer[2])
  if #customer[3] > 0 then chunked('HSET', members, customer[3]) end
end
chunked('SADD', KEYS[1], ids)
return #customers
"""


def _seed_chunk(keys: Keys, partition: int, records: SeedRecords, rows: Sequence[int]) -> tuple[list[str], bytes]:
    """One script call's keys and its one argument for the customers at ``rows``."""
    names = [keys.customers(partition)]
    customers = []
    for row, fields in zip(rows, records.fields(np.asarray(rows, dtype=np.int64)), strict=True):
        cid = records.ids[row]
        names += [keys.customer(partition, cid), keys.members(partition, cid)]
        customers.append([cid, fields, records.members.pairs(row)])
    return names, orjson.dumps(customers)


def seed_customers(
    client: redis.Redis, keys: Keys, records: SeedRecords, partitions: int, batch_size: int
) -> SeedReport:
    """Replace every partition's customers with ``records``: one script call per ``batch_size`` customers."""
    script = client.register_script(_SEED)
    owned = records.partition
    stale_removed = 0
    for partition in range(partitions):
        rows = np.flatnonzero(owned == partition).tolist()
        for chunk in _chunks(rows, batch_size):
            names, payload = _seed_chunk(keys, partition, records, chunk)
            script(keys=names, args=[payload])
        ids = {records.ids[row] for row in rows}
        stale = sorted(set(client.smembers(keys.customers(partition))) - ids)
        for chunk in _chunks(stale, batch_size):
            with client.pipeline(transaction=True) as pipe:
                for cid in chunk:
                    for key in (keys.customer(partition, cid), keys.members(partition, cid)):
                        pipe.delete(key)  # one key per DEL: a cluster pipeline refuses more
                pipe.srem(keys.customers(partition), *chunk)
                pipe.execute()
        stale_removed += len(stale)
    return SeedReport(customers_written=len(records.ids), scored=records.scored, stale_removed=stale_removed)


def reset_stream_state(client: redis.Redis, keys: Keys, partitions: int) -> None:
    """Forget where each partition's stream stood, keep its fencing epoch, move its sequence generation on."""
    for partition in range(partitions):
        checkpoint = keys.checkpoint(partition)
        stale = [keys.stats(partition), keys.counters(partition)]
        stale += [keys.outbox(partition, kind) for kind in ("changes", "observations", "dead-letters")]
        prefix = keys.tag(partition)
        days = list(client.scan_iter(match=f"{prefix}:seen:*", count=1000))
        days += list(client.scan_iter(match=f"{prefix}:guest-invoices:*", count=1000))
        with client.pipeline(transaction=True) as pipe:
            if client.exists(checkpoint):
                pipe.hdel(checkpoint, *_CLEARED)
                pipe.hincrby(checkpoint, "generation", 1)
                pipe.hset(checkpoint, "reset", "1")
            for key in (*stale, *days):
                pipe.delete(key)
            pipe.execute()


def seed_guests(client: redis.Redis, keys: Keys, guests: pd.DataFrame, partitions: int) -> GuestStats:
    """Replace each partition's guest statistics (guest lines are keyed ``guest:<invoice>``)."""
    total = GuestStats()
    where = guests["invoice_no"].map(lambda invoice: partition_of("guest:" + invoice, partitions))
    with client.pipeline(transaction=False) as pipe:
        for partition in range(partitions):
            part = guests[where == partition]
            amount = total_nanos(part["amount"].tolist())
            stats = GuestStats(len(part), pounds(amount), int(part["invoice_no"].nunique()))
            pipe.delete(keys.guests(partition))
            pipe.hset(
                keys.guests(partition),
                mapping={"lines": str(stats.lines), "amount_nanos": str(amount), "invoices": str(stats.invoices)},
            )
            total = GuestStats(total.lines + stats.lines, total.amount + stats.amount, total.invoices + stats.invoices)
        pipe.execute()
    return total


def seed_segment_products(
    client: redis.Redis,
    keys: Keys,
    customer_lines: pd.DataFrame,
    line_rows: np.ndarray,
    published: np.ndarray,
    partition: np.ndarray,
    partitions: int,
) -> int:
    """Replace every ``{pn}:products:{segment}:{b}`` with the net units of its published members; zeros left out.

    ``line_rows`` is each line's customer row; ``published`` and ``partition`` are per customer row
    (-1: no published segment).
    """
    product = kind_codes(customer_lines["kind"]) != NON_PRODUCT
    segment = published[line_rows]
    counted = product & (segment >= 0)
    units = (
        pd.DataFrame(
            {
                "partition": partition[line_rows][counted],
                "segment": segment[counted],
                "stock_code": customer_lines["stock_code"].to_numpy()[counted],
                "quantity": customer_lines["quantity"].to_numpy()[counted],
            }
        )
        .groupby(["partition", "segment", "stock_code"], observed=True)["quantity"]
        .sum()
    )
    written = 0
    with client.pipeline(transaction=False) as pipe:
        for part in range(partitions):
            for key in client.scan_iter(match=f"{keys.tag(part)}:products:*", count=1000):
                pipe.delete(key)
        for (part, seg), group in units[units != 0].groupby(level=[0, 1]):
            buckets: list[dict[str, int]] = [{} for _ in range(PRODUCT_BUCKETS)]
            for code, n in zip(group.index.get_level_values(2).astype(str), group.tolist(), strict=True):
                buckets[product_bucket(code)][code] = n
            for key, counts in zip(keys.products(int(part), int(seg)), buckets, strict=True):
                if counts:
                    pipe.hset(key, mapping=counts)
            written += 1
        pipe.execute()
    return written
