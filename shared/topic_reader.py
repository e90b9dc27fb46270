"""Reading a topic outside any consumer group: live, from the start, or one partition.

Used by the consumer tools and the report. Why not :func:`shared.kafka_clients.read_to_end`:
the tools also follow a topic
*live* (from now, until a count or an idle timeout) and read a single partition
(a customer's, found with the producer's key hash). Reading "to the end" here
means up to the end offsets *and* until two polls in a row return nothing,
because Tansu's end offsets can stop short of the last batch.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from shared.exceptions import MissingTopicError
from shared.kafka_clients import make_consumer
from shared.partitioner import partition_of
from shared.settings import KafkaSettings

POLL_MS = 200
QUIET_POLLS_AT_END = 2


@dataclass(frozen=True)
class ReadOptions:
    """Where to start and when to stop.

    ``idle_timeout_s``: stop after this long without a record (None = never).
    ``to_end``: stop once the end offsets seen at the start are reached and the topic is quiet.
    ``key``: read only the partition that records with this key go to.
    """

    from_beginning: bool = False
    idle_timeout_s: float | None = None
    to_end: bool = False
    key: str | None = None


def read(settings: KafkaSettings, topic: str, options: ReadOptions) -> Generator[ConsumerRecord]:
    """Records of ``topic`` in arrival order per partition; close the iterator to stop early."""
    consumer = make_consumer(settings, group_id=None)
    try:
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        if not numbers:
            raise MissingTopicError(f"topic {topic!r} does not exist (yet): nothing has been published to it")
        if options.key is not None:
            numbers = [numbers[partition_of(options.key, len(numbers))]]
        partitions = [TopicPartition(topic, number) for number in numbers]
        consumer.assign(partitions)
        if options.from_beginning:
            consumer.seek_to_beginning()
        else:
            consumer.seek_to_end()
        for partition in partitions:
            consumer.position(partition)  # resolve now, so "from now" means the moment we started
        ends = consumer.end_offsets(partitions) if options.to_end else {}
        last_record, quiet = time.monotonic(), 0
        while True:
            batches = consumer.poll(timeout_ms=POLL_MS)
            quiet = 0 if batches else quiet + 1
            for batch in batches.values():
                last_record = time.monotonic()
                yield from batch
            at_end = all(consumer.position(tp) >= end for tp, end in ends.items())
            if options.to_end and at_end and quiet >= QUIET_POLLS_AT_END:
                return
            if options.idle_timeout_s is not None and time.monotonic() - last_record >= options.idle_timeout_s:
                return
    finally:
        consumer.close()
