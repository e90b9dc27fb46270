"""What a batch publishes: written into Redis with the batch, sent to Kafka after it.

Two lists per partition: segment changes (topic ``segment-changes``, key =
customer) and drift observations (topic ``drift-observations``, key = source
partition). Each list holds what the last commit added; the next commit trims
what was sent since. Whoever takes a partition over first sends what is left
(:meth:`Outbox.drain`): a crash between commit and send repeats messages, never
loses one, and consumers drop repeats (changes by customer sequence,
observations by source offset).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis
from kafka import KafkaProducer

from shared.settings import TopicSettings
from worker.stream.commit import BatchCommit, Committer


@dataclass
class Staged:
    """The messages of one batch, per topic, as (key, value) pairs."""

    changes: list[tuple[str, str]] = field(default_factory=list)
    observations: list[tuple[str, str]] = field(default_factory=list)


class Outbox:
    """Stages a batch's messages into its commit and sends them once it is committed."""

    def __init__(
        self, client: redis.Redis, committer: Committer, producer: KafkaProducer, topics: TopicSettings
    ) -> None:
        self.client = client
        self.committer = committer
        self.producer = producer
        self.topics = topics
        self.sent_changes: dict[int, int] = {}
        self.sent_observations: dict[int, int] = {}

    def stage(
        self,
        batch: BatchCommit,
        partitions: list[int],
        changes: dict[int, list[tuple[str, str]]],
        observations: dict[int, str],
    ) -> Staged:
        """Put each partition's messages into ``batch`` (replacing what was already sent)."""
        staged = Staged()
        for partition in partitions:
            own = changes.get(partition, [])
            batch.outbox[partition] = (self.sent_changes.get(partition, 0), [value for _, value in own])
            staged.changes.extend(own)
            observed = [observations[partition]] if partition in observations else []
            batch.observations[partition] = (self.sent_observations.get(partition, 0), observed)
            staged.observations.extend((str(partition), value) for value in observed)
        return staged

    def send(self, batch: BatchCommit, staged: Staged) -> None:
        """After the commit: publish, wait for the acks, remember what the next commit may trim."""
        for key, value in staged.changes:
            self.producer.send(self.topics.segment_changes, key=key.encode(), value=value.encode())
        for key, value in staged.observations:
            self.producer.send(self.topics.drift_observations, key=key.encode(), value=value.encode())
        self.producer.flush()
        for partition, (_, pushed) in batch.outbox.items():
            self.sent_changes[partition] = len(pushed)
        for partition, (_, pushed) in batch.observations.items():
            self.sent_observations[partition] = len(pushed)

    def drain(self, partition: int) -> None:
        """Publish what a previous owner of ``partition`` committed but may not have sent."""
        changes = self.client.lrange(self.committer.outbox_key(partition), 0, -1)
        for value in changes:
            key = json.loads(value)["customer_id"]
            self.producer.send(self.topics.segment_changes, key=key.encode(), value=value.encode())
        observations = self.client.lrange(self.committer.observations_key(partition), 0, -1)
        for value in observations:
            self.producer.send(self.topics.drift_observations, key=str(partition).encode(), value=value.encode())
        self.producer.flush()
        self.sent_changes[partition] = len(changes)
        self.sent_observations[partition] = len(observations)

    def forget(self, partition: int) -> None:
        """A revoked partition: its next owner drains it."""
        self.sent_changes.pop(partition, None)
        self.sent_observations.pop(partition, None)
