"""Write the bootstrap state to Redis, partition by partition, in the worker's own layout.

Per partition of the invoices topic (``{pn}`` keys, :mod:`shared.state.keys`): the
customer records (aggregates and the bootstrap's decision: features, vector,
segment, all as of the cutoff), the members hashes (invoices, products with net
units and a bought flag), the customer index, guest statistics and product
popularity per published segment. Records are built column-wise and pipelined,
one transaction per partition and chunk.

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
from datetime import datetime

import numpy as np
import pandas as pd
import redis

from shared.features.aggregates import GuestStats
from shared.features.clock import NO_TIME, to_micros
from shared.partitioner import partition_of
from shared.state.customer_record import decision_fields
from shared.state.guests import pounds, total_nanos
from shared.state.keys import Keys
from worker.bootstrap.batch_aggregates import BatchAggregates

_CLEARED = ("offset", "clock", "swept")


@dataclass(frozen=True)
class SeedReport:
    customers_written: int
    scored: int
    stale_removed: int


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def members(customers: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Each customer's members hash: ``i:{invoice}`` of product lines, ``p:{code}`` = 2 × net units + bought."""
    product = customers[customers["kind"] != "non_product"]
    out: dict[str, dict[str, int]] = {}
    for customer, invoice in product[["customer_id", "invoice_no"]].drop_duplicates().itertuples(index=False):
        out.setdefault(customer, {})["i:" + invoice] = 1
    bought = product["kind"] == "purchase"
    units = product.assign(bought=bought).groupby(["customer_id", "stock_code"], sort=True)
    summed = units.agg(units=("quantity", "sum"), bought=("bought", "any"))
    for (customer, code), quantity, was_bought in zip(
        summed.index, summed["units"].tolist(), summed["bought"].tolist(), strict=True
    ):
        out.setdefault(customer, {})["p:" + code] = 2 * int(quantity) + int(was_bought)
    return out


def seed_customers(
    client: redis.Redis,
    keys: Keys,
    aggregates: BatchAggregates,
    customer_lines: pd.DataFrame,
    features: pd.DataFrame,
    vectors: np.ndarray,
    segments: np.ndarray,
    as_of: datetime,
    partitions: int,
    batch_size: int,
) -> SeedReport:
    """Replace every partition's customers with the seed; ``features``/``vectors``/``segments`` are row-aligned."""
    scored = {cid: i for i, cid in enumerate(features.index)}
    feature_rows = features.to_numpy()
    owned: dict[int, list[int]] = {}
    for row, cid in enumerate(aggregates.ids):
        owned.setdefault(partition_of(cid, partitions), []).append(row)
    member_sets = members(customer_lines)
    at = to_micros(as_of)
    stale_removed = 0
    for partition in range(partitions):
        rows = owned.get(partition, [])
        ids = [aggregates.ids[row] for row in rows]
        for chunk in _chunks(list(zip(rows, ids, strict=True)), batch_size):
            with client.pipeline(transaction=True) as pipe:
                for row, cid in chunk:
                    index = scored.get(cid)
                    segment = int(segments[index]) if index is not None else -1
                    fields = {"agg": aggregates.columns.record_json(row)} | decision_fields(
                        feature_rows[index].tolist() if index is not None else None,
                        vectors[index].tolist() if index is not None else None,
                        at,
                        segment,
                        segment,
                        NO_TIME,
                        0,
                        "",
                    )
                    for key in (keys.customer(partition, cid), keys.members(partition, cid)):
                        pipe.delete(key)  # one key per DEL: a cluster pipeline refuses more
                    pipe.hset(keys.customer(partition, cid), mapping=fields)
                    if cid in member_sets:
                        pipe.hset(keys.members(partition, cid), mapping=member_sets[cid])
                pipe.sadd(keys.customers(partition), *[cid for _, cid in chunk])
                pipe.execute()
        stale = sorted(set(client.smembers(keys.customers(partition))) - set(ids))
        for chunk in _chunks(stale, batch_size):
            with client.pipeline(transaction=True) as pipe:
                for cid in chunk:
                    for key in (keys.customer(partition, cid), keys.members(partition, cid)):
                        pipe.delete(key)  # one key per DEL: a cluster pipeline refuses more
                pipe.srem(keys.customers(partition), *chunk)
                pipe.execute()
        stale_removed += len(stale)
    return SeedReport(customers_written=len(aggregates), scored=len(scored), stale_removed=stale_removed)


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
    published: dict[str, int],
    partitions: int,
) -> int:
    """Replace every ``{pn}:products:{segment}`` with the net units of its published members; zeros left out."""
    product = customer_lines[customer_lines["kind"] != "non_product"]
    segment = product["customer_id"].map(published)
    product = product[segment.notna()].assign(
        segment=segment.dropna().astype(int),
        partition=product["customer_id"].map(lambda cid: partition_of(cid, partitions)),
    )
    units = product.groupby(["partition", "segment", "stock_code"])["quantity"].sum()
    written = 0
    with client.pipeline(transaction=False) as pipe:
        for partition in range(partitions):
            for key in client.scan_iter(match=f"{keys.tag(partition)}:products:*", count=1000):
                pipe.delete(key)
        for (partition, seg), group in units[units != 0].groupby(level=[0, 1]):
            counts = dict(zip(group.index.get_level_values(2), group.tolist(), strict=True))
            pipe.zadd(keys.products(int(partition), int(seg)), counts)
            written += 1
        pipe.execute()
    return written
