"""Taking a partition over: claim it, check Redis did not go back, send what was left, load its customers.

Order, and why:

1. claim: a new owner epoch in ``{pn}:checkpoint`` fences every earlier owner out
   (:meth:`~worker.stream.checkpoint.Checkpoint.claim`);
2. compare the offset Redis holds with the one the group committed to Kafka. Kafka
   only ever receives offsets whose batch had landed in Redis *and* whose messages
   had not been published yet, so Redis behind Kafka means Redis lost writes (a
   restore, a power loss under ``appendfsync everysec``). Messages of the lost
   batches may be on Kafka already; re-processing could publish different events
   under the same (customer, sequence). So the partition moves to a new sequence
   generation, recorded in Redis and in the Kafka commit's metadata before anything
   is published: every sequence published from now on is larger than any before;
3. send what the previous owner committed but may not have sent (the outbox);
4. load the partition's customers from its own index, in bulk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import orjson
import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from shared.features.clock import NO_TIME, from_iso
from shared.state.customer_record import load_records
from shared.state.keys import Keys
from worker.segmentation.sweep_ticks import SweepTicks
from worker.stream.book import CustomerBook
from worker.stream.checkpoint import Checkpoint

log = logging.getLogger("worker")


@dataclass(frozen=True)
class Owned:
    """A partition this worker owns: its fencing epoch and sequence generation."""

    epoch: int
    generation: int
    offset: int  # next offset to apply (-1: from the beginning)
    clock: int  # event time reached (µs), NO_TIME before any
    swept: int  # tick of its last sweep pass (worker.segmentation.sweep_ticks), NO_TIME before any


def metadata(generation: int) -> str:
    """What the worker stores with its Kafka offset commits."""
    return orjson.dumps({"generation": generation}).decode()


def committed_generation(committed: OffsetAndMetadata | None) -> int:
    if committed is None or not committed.metadata:
        return 0
    try:
        return int(orjson.loads(committed.metadata).get("generation", 0))
    except (orjson.JSONDecodeError, AttributeError, ValueError):
        return 0


def claim(checkpoint: Checkpoint, consumer: KafkaConsumer, topic: str, partition: int, ticks: SweepTicks) -> Owned:
    """Steps 1 and 2 above."""
    claimed = checkpoint.claim(partition)
    tp = TopicPartition(topic, partition)
    committed = consumer.committed(tp, metadata=True)
    generation = max(claimed.generation, committed_generation(committed))
    if committed is not None and committed.offset > max(claimed.offset, 0) and not claimed.reset:
        generation += 1
        log.warning(
            "partition %d: Redis holds offset %d but %d was committed to Kafka: Redis lost writes (restored or "
            "power loss). Re-applying from Redis's offset; segment changes continue under sequence generation %d, "
            "so no published (customer, sequence) is reused",
            partition,
            claimed.offset,
            committed.offset,
            generation,
            extra={"partition": partition, "offset": claimed.offset},
        )
        checkpoint.set_generation(partition, claimed.epoch, generation)
        consumer.commit({tp: OffsetAndMetadata(committed.offset, metadata(generation), -1)})
    elif generation != claimed.generation:
        checkpoint.set_generation(partition, claimed.epoch, generation)
    midnight = from_iso(claimed.swept)
    if midnight == NO_TIME:
        swept = NO_TIME
    else:  # a sweep stored before passes were recorded was a whole one
        swept = midnight + claimed.sweep_pass if claimed.sweep_pass else ticks.final(midnight)
    return Owned(claimed.epoch, generation, claimed.offset, from_iso(claimed.clock), swept)


def load_partition(client: redis.Redis, keys: Keys, partition: int, book: CustomerBook) -> int:
    """Step 4: every customer of ``partition`` into ``book``; returns how many."""
    loaded = 0
    for records in load_records(client, keys, partition):
        if not len(records):
            continue
        rows = book.add(records.ids, np.full(len(records), partition))
        book.aggregates.load_packed(rows, records.packed, records.countries)
        for name in ("segment", "published", "published_at", "seq", "pending_segment", "pending_count", "as_of"):
            getattr(book, name)[rows] = getattr(records, name)
        loaded += len(records)
    return loaded
