"""What a batch publishes: committed into Redis with the batch, sent to Kafka after it, trimmed once acknowledged.

Three lists per partition (``{pn}:outbox:changes``, ``…:observations``,
``…:dead-letters``). A commit trims what the previous one's publishing had sent
and had acknowledged, and pushes its own messages; after it lands they are sent
and every acknowledgement is awaited, with a bound (:func:`shared.kafka_clients.deliver`).
A send that fails (a broker away longer than the delivery timeout) is retried
with backoff, so nothing is trimmed that Kafka did not acknowledge; whoever takes
a partition over first sends what is left (:meth:`Outbox.drain`). A crash between
commit and send repeats messages, never loses one: consumers drop repeats
(changes by customer and sequence, observations by source offset, dead letters by
source position).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson
import redis
from kafka import KafkaProducer

from shared.exceptions import DeliveryError
from shared.kafka_clients import Outgoing, deliver
from shared.settings import TopicSettings
from shared.state.keys import Keys
from worker.stream.checkpoint import OUTBOXES, PartitionCommit

log = logging.getLogger("worker")


@dataclass
class Outbox:
    """Sends committed messages and remembers how many each outbox may trim next."""

    client: redis.Redis
    keys: Keys
    producer: KafkaProducer
    topics: TopicSettings
    timeout_s: float
    retry_initial_s: float
    retry_max_s: float
    stopping: Callable[[], bool]

    def __post_init__(self) -> None:
        self.sent: dict[tuple[int, str], int] = {}

    def trims(self, partition: int) -> dict[str, int]:
        return {kind: self.sent.get((partition, kind), 0) for kind in OUTBOXES}

    def _topic(self, kind: str) -> str:
        return {
            "changes": self.topics.segment_changes,
            "observations": self.topics.drift_observations,
            "dead-letters": self.topics.dead_letter,
        }[kind]

    def _message(self, kind: str, partition: int, value: str) -> Outgoing:
        topic = self._topic(kind)
        if kind == "changes":
            return Outgoing(topic, value.encode(), orjson.loads(value)["customer_id"].encode())
        if kind == "observations":
            return Outgoing(topic, value.encode(), str(partition).encode())
        letter = orjson.loads(value)
        headers = [(name, text.encode()) for name, text in letter.pop("_headers", [])]
        key = letter.pop("_key", None)
        return Outgoing(topic, orjson.dumps(letter), key.encode() if key is not None else None, headers)

    def publish(self, commits: Sequence[PartitionCommit]) -> None:
        """Send every message of landed ``commits``, waiting for the acks; retry until sent or stopping."""
        pending = {(c.partition, kind): c.outbox(kind) for c in commits for kind in OUTBOXES}
        self._send(pending)
        for (partition, kind), values in pending.items():
            self.sent[(partition, kind)] = len(values)

    def drain(self, partition: int) -> None:
        """Send what a previous owner of ``partition`` committed but may not have sent."""
        pending = {(partition, kind): self.client.lrange(self.keys.outbox(partition, kind), 0, -1) for kind in OUTBOXES}
        self._send(pending)
        for key, values in pending.items():
            self.sent[key] = len(values)

    def forget(self, partition: int) -> None:
        """A revoked partition: its next owner drains it."""
        for kind in OUTBOXES:
            self.sent.pop((partition, kind), None)

    def _send(self, pending: dict[tuple[int, str], list[str]]) -> None:
        """Deliver everything, resending what was not acknowledged until it is (or the worker stops)."""
        outgoing = [self._message(kind, p, value) for (p, kind), values in pending.items() for value in values]
        delay = self.retry_initial_s
        while outgoing:
            try:
                deliver(self.producer, outgoing, self.timeout_s)
                return
            except DeliveryError as exc:
                if self.stopping():
                    raise
                outgoing = outgoing[exc.acknowledged :]
                log.warning("%s; sending again in %.1f s (the outbox keeps them until Kafka acknowledges)", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)


def dead_letter_entry(letter_json: str, key: bytes | None, headers: list[tuple[str, bytes]]) -> str:
    """An outbox entry for a dead letter: the letter plus the record key and headers to send it with."""
    entry = orjson.loads(letter_json)
    entry["_key"] = key.decode("utf-8", errors="replace") if key is not None else None
    entry["_headers"] = [[name, value.decode()] for name, value in headers]
    return orjson.dumps(entry).decode()


def commit_messages(commit: PartitionCommit) -> int:
    return sum(len(commit.outbox(kind)) for kind in OUTBOXES)
