"""The replay loop: publish a file's rows in event-time order, resumably.

Each published message (valid line or dead letter) gets the next sequence number,
in the deterministic order of :func:`publishable_events`. The checkpoint stores
how many of them the broker acknowledged as a contiguous prefix; a restart skips
that prefix and re-sends the rest (same event ids, so consumers drop repeats).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from producer.acks import AckTracker
from producer.checkpoint import Checkpoint, fingerprint
from producer.events import EventCounts, Selection
from producer.pacing import Pacer
from producer.prepare import DeadLetterMessage, Message, local_messages, prepared_messages
from producer.settings import ProducerSettings
from producer.validation import Limits
from shared.exceptions import EmptyInputError, ServiceUnavailableError
from shared.kafka_clients import ensure_topics, make_producer
from shared.partitioner import KeyPartitioner
from shared.settings import Settings

log = logging.getLogger(__name__)

SEQ_HEADER = "replay.seq"
_HOUSEKEEPING_EVERY = 2048  # events between progress/ack/checkpoint bookkeeping


@dataclass(frozen=True)
class ReplayOptions:
    """One run's choices (the CLI flags); tuning lives in :class:`ProducerSettings`."""

    speed: float | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    partitions: int | None = None
    topic: str | None = None
    checkpoint: Path | None = None
    from_scratch: bool = False
    encoding: str | None = None
    progress: bool = False


@dataclass
class ReplaySummary:
    """What a run did; ``interrupted`` is set when a stop request ended it early."""

    topic: str
    checkpoint: Path
    sent: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    guests: int = 0
    late: int = 0
    skipped_by_resume: int = 0
    out_of_window: int = 0
    acked: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def rows_per_s(self) -> float:
        published = self.sent + sum(self.dead_lettered.values())
        return published / self.elapsed_s if self.elapsed_s else 0.0

    def lines(self) -> list[str]:
        """Human-readable summary for the end of a run."""
        reasons = ", ".join(f"{reason}={n}" for reason, n in sorted(self.dead_lettered.items())) or "none"
        state = "interrupted" if self.interrupted else "complete"
        return [
            f"replay {state}: sent {self.sent} to {self.topic} (guests {self.guests}, late {self.late}), "
            f"dead-lettered {sum(self.dead_lettered.values())} ({reasons})",
            f"skipped by resume {self.skipped_by_resume}, outside window {self.out_of_window}, "
            f"acked watermark {self.acked} in {self.checkpoint}",
            f"elapsed {self.elapsed_s:.1f} s, {self.rows_per_s:,.0f} rows/s",
        ]


def replay(
    path: Path | str,
    settings: Settings,
    options: ReplayOptions = ReplayOptions(),
    config: ProducerSettings | None = None,
    stop: threading.Event | None = None,
) -> ReplaySummary:
    """Replay ``path`` to the invoices topic; returns when done or when ``stop`` is set.

    Raises :class:`InputError` for unusable input and :class:`ServiceUnavailableError`
    when the broker cannot be reached or stops acknowledging.
    """
    path = Path(path)
    config = config or ProducerSettings()
    stop = stop or threading.Event()
    topic = options.topic or settings.topics.invoices
    selection = Selection(
        start=options.start,
        end=options.end,
        limit=options.limit,
        limits=Limits(max_price=config.max_price, max_quantity=config.max_quantity),
        reorder_buffer=config.reorder_buffer,
    )
    checkpoint = _checkpoint(path, topic, settings.topics.dead_letter, selection, options, config)
    summary = ReplaySummary(topic=topic, checkpoint=checkpoint.path)
    resume_from = 0 if options.from_scratch else checkpoint.load()
    if resume_from:
        log.info("resuming after %d acknowledged messages (%s)", resume_from, checkpoint.path)
    producer = _connect(settings, [topic, settings.topics.dead_letter], options.partitions)
    tracker = AckTracker(acked=resume_from)
    counts = EventCounts()
    started = time.monotonic()
    finished = False
    try:
        _publish(
            (prepared_messages if config.prepare_process else local_messages)(
                path, selection, counts, config.chunk_rows, options.encoding or config.encoding
            ),
            _Sink(producer, topic, settings.topics.dead_letter, tracker),
            resume_from,
            Pacer(options.speed, stop),
            _Bookkeeping(checkpoint, tracker, config.checkpoint_interval_s, options.progress),
            summary,
            stop,
        )
        producer.flush()
        finished = not stop.is_set()
    except KafkaError as exc:
        raise ServiceUnavailableError(f"Kafka at {settings.kafka.bootstrap_servers} failed: {exc}") from exc
    finally:
        producer.close(timeout=10)
        summary.acked = _final_acked(tracker)
        checkpoint.save(summary.acked, complete=finished)
        summary.elapsed_s = time.monotonic() - started
        summary.late = counts.late
        summary.out_of_window = counts.out_of_window
        summary.interrupted = stop.is_set()
    if finished and summary.acked == 0:
        raise EmptyInputError(f"{path}: no rows in the selected window")
    return summary


def _connect(settings: Settings, topics: list[str], partitions: int | None) -> KafkaProducer:
    """A producer, once the topics exist.

    The producer comes first, with the request timeout as bootstrap timeout, so an
    unreachable broker is reported after SEG_KAFKA__REQUEST_TIMEOUT_MS rather than
    kafka-python's fixed 30 s.
    """
    producer = make_producer(settings.kafka, bootstrap_timeout_ms=settings.kafka.request_timeout_ms)
    try:
        ensure_topics(
            settings.kafka, topics, partitions or settings.topics.partitions, settings.topics.replication_factor
        )
    except BaseException:
        producer.close(timeout=1)
        raise
    return producer


def _checkpoint(
    path: Path, topic: str, dead_letter: str, selection: Selection, options: ReplayOptions, config: ProducerSettings
) -> Checkpoint:
    identity = fingerprint(path, {"topic": topic, "dead_letter": dead_letter, "selection": asdict(selection)})
    if options.checkpoint is not None:
        return Checkpoint(options.checkpoint, identity)
    return Checkpoint.in_dir(config.checkpoint_dir, identity)


def _final_acked(tracker: AckTracker) -> int:
    try:
        return tracker.advance()
    except ServiceUnavailableError:
        return tracker.acked


class _Sink:
    """Sends one prepared message with its sequence header and tracks the broker's answer."""

    def __init__(self, producer: KafkaProducer, topic: str, dead_letter: str, tracker: AckTracker) -> None:
        self.producer = producer
        self.topic = topic
        self.dead_letter = dead_letter
        self.tracker = tracker
        self.partition_of = KeyPartitioner(producer.partitions_for(topic))

    def send(self, message: Message, seq: int) -> None:
        headers = [*message.headers, (SEQ_HEADER, str(seq).encode())]
        if isinstance(message, DeadLetterMessage):
            future = self.producer.send(self.dead_letter, value=message.value, headers=headers)
        else:
            partition = self.partition_of(message.key)
            future = self.producer.send(
                self.topic, key=message.key, value=message.value, partition=partition, headers=headers
            )
        self.tracker.track(future)


class _Bookkeeping:
    """Progress bar, ack watermark and periodic checkpoint, done every few thousand events."""

    def __init__(self, checkpoint: Checkpoint, tracker: AckTracker, interval_s: float, progress: bool) -> None:
        self.checkpoint = checkpoint
        self.tracker = tracker
        self.interval_s = interval_s
        self.bar = tqdm(unit=" rows", disable=not progress, smoothing=0.1)
        self.saved_at = time.monotonic()

    def tick(self, events: int) -> None:
        self.bar.update(events)
        acked = self.tracker.advance()
        if time.monotonic() - self.saved_at >= self.interval_s:
            self.checkpoint.save(acked, complete=False)
            self.saved_at = time.monotonic()

    def close(self, events: int) -> None:
        self.bar.update(events)
        self.bar.close()


def _publish(
    messages: Iterable[Message],
    sink: _Sink,
    resume_from: int,
    pacer: Pacer,
    books: _Bookkeeping,
    summary: ReplaySummary,
    stop: threading.Event,
) -> None:
    seq = 0
    since_tick = 0
    try:
        for message in messages:
            if stop.is_set():
                break
            if seq < resume_from:
                summary.skipped_by_resume += 1
            else:
                if isinstance(message, DeadLetterMessage):
                    summary.dead_lettered[message.reason] += 1
                else:
                    pacer.wait(message.at)
                    summary.sent += 1
                    summary.guests += message.guest
                sink.send(message, seq)
            seq += 1
            since_tick += 1
            if since_tick == _HOUSEKEEPING_EVERY:
                books.tick(since_tick)
                since_tick = 0
    finally:
        books.close(since_tick)
