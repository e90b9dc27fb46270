"""Moving a partition's stored position by hand: after the broker lost data the state cannot match.

When the topic's log no longer holds the offsets Redis says to resume at (its
data was wiped, the topic was re-created, retention removed records not applied
yet), the worker stops (:class:`~shared.exceptions.OffsetsBeyondLogError`)
rather than skip records silently. An operator then decides: re-bootstrap the
state and replay, or accept the gap with this command, which moves each such
partition's stored offset to the log's end (or start). It takes a new owner
epoch, so a worker still holding the partition writes nothing more, and it marks
the move as deliberate, so the next owner does not mistake it for Redis having
lost writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kafka import TopicPartition

from shared.kafka_clients import high_watermarks, make_consumer
from shared.redis_client import connect
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import partition_count

Target = Literal["log-end", "log-start"]


@dataclass(frozen=True)
class Moved:
    partition: int
    before: int  # -1: nothing applied yet
    after: int


def log_bounds(settings: Settings, partitions: int, target: Target, timeout_s: float) -> dict[int, int]:
    """Each partition's log end (exact high watermark) or start (earliest offset)."""
    topic = settings.topics.invoices
    if target == "log-end":
        return high_watermarks(settings.kafka, [topic], timeout_s)[topic]
    consumer = make_consumer(settings.kafka, group_id=None)
    try:
        starts = consumer.beginning_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in starts.items()}
    finally:
        consumer.close()


def reset_offsets(
    settings: Settings, target: Target, only: set[int] | None = None, timeout_s: float = 30.0
) -> list[Moved]:
    """Move the stored offsets of partitions whose offset lies outside the log (all of ``only`` when given)."""
    client, keys = connect(settings)
    partitions = partition_count(client, keys)
    bounds = log_bounds(settings, partitions, target, timeout_s)
    ends = high_watermarks(settings.kafka, [settings.topics.invoices], timeout_s)[settings.topics.invoices]
    moved = []
    for partition in range(partitions):
        stored = client.hget(keys.checkpoint(partition), "offset")
        before = int(stored) if stored else -1
        outside = before > ends.get(partition, 0)
        if (only is not None and partition not in only) or (only is None and not outside):
            continue
        after = bounds.get(partition, 0)
        _move(client, keys, partition, after)
        moved.append(Moved(partition, before, after))
    return moved


def _move(client: object, keys: Keys, partition: int, offset: int) -> None:
    checkpoint = keys.checkpoint(partition)
    with client.pipeline(transaction=True) as pipe:  # type: ignore[attr-defined]
        pipe.hincrby(checkpoint, "epoch", 1)
        pipe.hset(checkpoint, mapping={"offset": str(offset), "reset": "1"})
        pipe.execute()
