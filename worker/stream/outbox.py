"""What a batch publishes: committed into Redis with the batch, sent to Kafka after it, trimmed once acknowledged.

Three lists per partition (``{pn}:outbox:changes``, ``…:observations``,
``…:dead-letters``). A commit trims what the previous one's publishing had sent
and had acknowledged, and pushes its own messages; after it lands they are sent
and every acknowledgement is awaited, with a bound (:func:`send_acknowledged`).
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
from kafka.errors import KafkaError

from shared.exceptions import ServiceUnavailableError
from shared.settings import TopicSettings
from shared.state.keys import Keys
from worker.stream.checkpoint import OUTBOXES, PartitionCommit

log = logging.getLogger("worker")

Message = tuple[bytes | None, bytes, list[tuple[str, bytes]] | None]  # key, value, headers


class PublishError(ServiceUnavailableError):
    """Kafka did not acknowledge every message in time; nothing was trimmed, the send is retried."""


def send_acknowledged(producer: KafkaProducer, topic: str, messages: Sequence[Message], timeout_s: float) -> None:
    """Send ``messages`` and wait until Kafka acknowledged each, or raise :class:`PublishError`.

    Every future is checked: ``flush`` alone does not say whether a record expired.
    """
    futures = [producer.send(topic, key=key, value=value, headers=headers or []) for key, value, headers in messages]
    try:
        producer.flush(timeout=timeout_s)
    except KafkaError as exc:
        raise PublishError(
            f"{len(futures)} messages to {topic} not acknowledged within {timeout_s:.0f} s ({exc})"
        ) from exc
    for future in futures:
        if not future.is_done:
            raise PublishError(f"a message to {topic} was not acknowledged within {timeout_s:.0f} s")
        if future.failed():
            raise PublishError(f"Kafka refused a message to {topic}: {future.exception}")


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

    @staticmethod
    def _message(kind: str, partition: int, value: str) -> Message:
        if kind == "changes":
            return orjson.loads(value)["customer_id"].encode(), value.encode(), None
        if kind == "observations":
            return str(partition).encode(), value.encode(), None
        letter = orjson.loads(value)
        headers = [(name, text.encode()) for name, text in letter.pop("_headers", [])]
        key = letter.pop("_key", None)
        return (key.encode() if key is not None else None), orjson.dumps(letter), headers

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
        by_topic: dict[str, list[Message]] = {}
        for (partition, kind), values in pending.items():
            if values:
                by_topic.setdefault(kind, []).extend(self._message(kind, partition, value) for value in values)
        delay = self.retry_initial_s
        while by_topic:
            try:
                for kind, messages in list(by_topic.items()):
                    send_acknowledged(self.producer, self._topic(kind), messages, self.timeout_s)
                    del by_topic[kind]
                return
            except PublishError as exc:
                if self.stopping():
                    raise
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
