"""The segment-changes topic as the API serves it: each customer's last change, a buffer, a resumable stream.

One background thread reads every partition of the topic from its beginning,
outside any consumer group, and keeps:

* each customer's last change (``GET /customers/{id}``: reason, sequence, time);
* the latest ``SEG_API_CHANGE_BUFFER`` distinct changes, in the order read (the
  dashboard's sizes over time and flows, and the server-sent event stream);
* the offsets of repeats. The worker publishes at least once, so a change may be
  on the topic twice; a customer's changes sit in one partition in sequence
  order, so a change whose sequence is not above the customer's highest so far
  is a repeat. Repeats never enter the buffer and are never sent.

Event ids (``Last-Event-ID``): the position of the stream after the event, for
every partition of the topic: ``0:1042,1:977,2:1011`` means every change below
offset 1042 of partition 0, 977 of partition 1 and 1011 of partition 2 has been
sent (or was a repeat). A client that reconnects with it gets exactly the changes
at or after those offsets, in each partition's order, none twice. Offsets older
than the buffer are read from the topic again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from kafka import TopicPartition

from shared.contracts.segment_change import SegmentChange
from shared.kafka_clients import make_consumer
from shared.settings import KafkaSettings
from worker.queries.views import LastChange

log = logging.getLogger("worker.api.changes")

POLL_MS = 200
TOPIC_WAIT_S = 1.0
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0


@dataclass(frozen=True)
class Delivered:
    """A distinct change and where it is on the topic."""

    partition: int
    offset: int
    change: SegmentChange


def encode_position(positions: dict[int, int]) -> str:
    """An event id from per-partition next offsets.

    >>> encode_position({1: 977, 0: 1042})
    '0:1042,1:977'
    """
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(positions.items()))


def decode_position(text: str) -> dict[int, int] | None:
    """The per-partition offsets of an event id; None when it is not one of ours.

    >>> decode_position("0:1042,1:977"), decode_position("banana")
    ({0: 1042, 1: 977}, None)
    """
    try:
        pairs = [part.split(":") for part in text.strip().split(",") if part]
        positions = {int(partition): int(offset) for partition, offset in pairs}
    except ValueError:
        return None
    return positions if positions and all(p >= 0 and o >= 0 for p, o in positions.items()) else None


class ChangeLog:
    """Reads the segment-changes topic in a thread; async readers wait for new changes."""

    def __init__(self, kafka: KafkaSettings, topic: str, buffer: int) -> None:
        self.kafka = kafka
        self.topic = topic
        self._lock = threading.Lock()
        self._last: dict[str, SegmentChange] = {}
        self._buffer: deque[Delivered] = deque(maxlen=buffer)
        self._base = 0  # index of the buffer's first entry among every distinct change read
        self._evicted: dict[int, int] = {}  # partition -> offset after its last change that left the buffer
        self._repeats: set[tuple[int, int]] = set()
        self._positions: dict[int, int] = {}
        self.caught_up = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-log", daemon=True)
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def last_change(self, customer_id: str) -> LastChange | None:
        with self._lock:
            change = self._last.get(customer_id)
        return None if change is None else LastChange.of(change)

    def positions(self) -> dict[int, int]:
        """Next offset to read per partition: where "from now" starts."""
        with self._lock:
            return dict(self._positions)

    def recent(self) -> list[SegmentChange]:
        """The buffered distinct changes, in the order read."""
        with self._lock:
            return [entry.change for entry in self._buffer]

    def after(self, cursor: int, positions: dict[int, int]) -> tuple[int, list[Delivered], dict[int, tuple[int, int]]]:
        """What a reader at ``positions`` gets next: buffered changes read after ``cursor`` (-1: all) at or past
        ``positions``, the new cursor, and per partition the offsets [from, to) it needs that have left the buffer
        (to read from the topic first; the buffered changes are then left for the next call)."""
        with self._lock:
            gaps = {p: (positions.get(p, 0), end) for p, end in self._evicted.items() if positions.get(p, 0) < end}
            if gaps:
                return -1, [], gaps
            start = max(0, cursor + 1 - self._base)
            entries = [e for e in list(self._buffer)[start:] if e.offset >= positions.get(e.partition, 0)]
            return self._base + len(self._buffer) - 1, entries, {}

    def is_repeat(self, partition: int, offset: int) -> bool:
        with self._lock:
            return (partition, offset) in self._repeats

    async def wait(self, timeout: float) -> bool:
        """Until new changes are read (True), or ``timeout`` seconds (False)."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def _notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def _add(self, partition: int, offset: int, change: SegmentChange) -> bool:
        """Record one message; False for a repeat. Called with the lock held."""
        self._positions[partition] = offset + 1
        last = self._last.get(change.customer_id)
        if last is not None and change.sequence <= last.sequence:
            self._repeats.add((partition, offset))
            return False
        self._last[change.customer_id] = change
        if len(self._buffer) == self._buffer.maxlen:
            gone = self._buffer[0]
            self._evicted[gone.partition] = gone.offset + 1
            self._base += 1
        self._buffer.append(Delivered(partition, offset, change))
        return True

    def _run(self) -> None:
        """Read until stopped; after a failure (broker down), go on from the positions reached, with backoff."""
        delay = RETRY_INITIAL_S
        while not self._stop.is_set():
            try:
                self._consume()
                return
            except Exception as exc:  # any broker failure: shown by /readyz until the reader is back
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("segment-change reader failed (%s); again in %.0f s", self.error, delay)
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    @property
    def healthy(self) -> bool:
        """Running and not between a failure and its retry."""
        return self.alive and self.error is None

    def _consume(self) -> None:
        consumer = make_consumer(self.kafka, group_id=None)
        try:
            numbers = self._wait_for_topic(consumer)
            if numbers is None:
                return
            partitions = [TopicPartition(self.topic, n) for n in numbers]
            consumer.assign(partitions)
            with self._lock:
                self._positions = {n: self._positions.get(n, 0) for n in numbers}
            for tp in partitions:
                consumer.seek(tp, self._positions[tp.partition])
            ends = {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
            while not self._stop.is_set():
                polled = consumer.poll(timeout_ms=POLL_MS)
                added = False
                with self._lock:
                    for tp, records in polled.items():
                        for record in records:
                            change = SegmentChange.model_validate_json(record.value)
                            added = self._add(tp.partition, record.offset, change) or added
                    if not polled:
                        self._positions = {tp.partition: consumer.position(tp) for tp in partitions}
                    self.caught_up = self.caught_up or all(self._positions[p] >= end for p, end in ends.items())
                if added:
                    self._notify()
        finally:
            consumer.close()

    def _wait_for_topic(self, consumer: object) -> list[int] | None:
        """The topic's partitions once it exists (a fresh system has published nothing yet)."""
        while not self._stop.is_set():
            numbers = sorted(consumer.partitions_for_topic(self.topic) or ())  # type: ignore[attr-defined]
            self.error = None  # the broker answers
            if numbers:
                return numbers
            self.caught_up = True  # nothing to catch up with
            self._stop.wait(TOPIC_WAIT_S)
            consumer.topics()  # type: ignore[attr-defined]  # refreshes the metadata
        return None


def read_range(kafka: KafkaSettings, topic: str, ranges: dict[int, tuple[int, int]]) -> Iterator[Delivered]:
    """The messages at offsets [from, to) of each partition, read again (a resume from before the buffer)."""
    consumer = make_consumer(kafka, group_id=None)
    try:
        partitions = {TopicPartition(topic, p): bounds for p, bounds in ranges.items() if bounds[0] < bounds[1]}
        consumer.assign(list(partitions))
        for tp, (start, _) in partitions.items():
            consumer.seek(tp, start)
        pending = set(partitions)
        while pending:
            for tp, records in consumer.poll(timeout_ms=POLL_MS).items():
                end = partitions[tp][1]
                for record in records:
                    if record.offset < end:
                        yield Delivered(tp.partition, record.offset, SegmentChange.model_validate_json(record.value))
                if consumer.position(tp) >= end:
                    pending.discard(tp)
                    consumer.pause(tp)
    finally:
        consumer.close()
