"""Consumer lag and rows/s of the workers, for the dashboard: Redis' applied offsets against the broker.

How: the workers store the next offset to apply per partition of the invoices
topic in Redis, in the same atomic step as the state (``offsets:{topic}``, read
through :func:`worker.queries.state.applied_offsets`). Lag per partition is the
broker's end offset minus that; the end offsets are asked of the broker at most
every ``SEG_API_END_OFFSETS_TTL_S`` seconds. Rows/s is the growth of the sum of the
applied offsets over the samples of the last :data:`WINDOW_S` seconds, one sample
per request for progress (the dashboard asks every few seconds).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition

from shared.kafka_clients import make_consumer
from shared.settings import KafkaSettings
from worker.queries.views import PartitionProgress, ProgressView

log = logging.getLogger("worker.api.progress")

WINDOW_S = 30.0


class Progress:
    """End offsets (cached) and the samples behind rows/s; one per API process."""

    def __init__(self, kafka: KafkaSettings, topic: str, ttl_s: float) -> None:
        self.kafka = kafka
        self.topic = topic
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._ends: dict[int, int] | None = None
        self._ends_at = -float("inf")
        self._samples: deque[tuple[float, int]] = deque()

    def end_offsets(self) -> dict[int, int] | None:
        """The broker's end offset per partition (blocking; cached), None while the broker does not answer."""
        with self._lock:
            if time.monotonic() - self._ends_at < self.ttl_s:
                return self._ends
            try:
                if self._consumer is None:
                    self._consumer = make_consumer(self.kafka, group_id=None)
                numbers = self._consumer.partitions_for_topic(self.topic) or set()
                partitions = [TopicPartition(self.topic, n) for n in sorted(numbers)]
                found = self._consumer.end_offsets(partitions) if partitions else {}
                self._ends = {tp.partition: end for tp, end in found.items()}
            except Exception as exc:  # any broker failure: lag unknown, the rest of the view stands
                log.warning("end offsets of %s unavailable: %s", self.topic, exc)
                self._ends = None
            self._ends_at = time.monotonic()
            return self._ends

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def view(self, applied: dict[int, int], ends: dict[int, int] | None, event_time: datetime | None) -> ProgressView:
        """Lag per partition and rows/s, sampling the applied total now."""
        total = sum(applied.values())
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, total))
            while self._samples and now - self._samples[0][0] > WINDOW_S:
                self._samples.popleft()
            first_at, first_total = self._samples[0]
        rate = (total - first_total) / (now - first_at) if now - first_at >= 1.0 else None
        numbers = sorted(set(applied) | set(ends or {}))
        partitions = [
            PartitionProgress(
                partition=p,
                applied_offset=applied.get(p),
                end_offset=None if ends is None else ends.get(p),
                lag=None if ends is None or p not in ends else max(0, ends[p] - applied.get(p, 0)),
            )
            for p in numbers
        ]
        lags = [p.lag for p in partitions]
        return ProgressView(
            topic=self.topic,
            event_time=event_time,
            applied=total,
            lag=None if ends is None else sum(lag for lag in lags if lag is not None),
            rows_per_s=rate,
            partitions=partitions,
        )
