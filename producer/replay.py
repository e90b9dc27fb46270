"""The replay loop: publish a file's rows in event-time order, resumably.

Each published message (valid line or dead letter) gets the next sequence number,
in the deterministic order of :func:`publishable_events`. The checkpoint stores
how many of them the broker acknowledged as a contiguous prefix, and on which
cluster and topics (:mod:`producer.target`); a restart skips that prefix and
re-sends the rest (same event ids, so consumers drop repeats).

A broker outage inside a run is the same thing in-process: when a send fails or
nothing is acknowledged for longer than the producer's timeouts allow, the
producer is closed (its unacknowledged sends failed), the checkpoint saved, and
after a backoff a new producer resumes from the acknowledged prefix. Every wait
is bounded and a stop request (SIGINT/SIGTERM) is answered within seconds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from tqdm import tqdm

from producer.acks import AckTracker
from producer.batch import Batch
from producer.checkpoint import Checkpoint, Saved, fingerprint
from producer.events import EventCounts, Selection
from producer.pacing import Pacer
from producer.prepare import local_batches, prepared_batches, warm_up
from producer.settings import ProducerSettings
from producer.target import Target, observe, resume_point
from producer.validation import Limits
from shared.exceptions import DeliveryError, EmptyInputError, ServiceUnavailableError
from shared.kafka_clients import close_producer, ensure_topics, kafka_error, make_producer
from shared.redaction import redact
from shared.settings import Settings

log = logging.getLogger(__name__)

SEQ_HEADER = "replay.seq"
_ACK_POLL_S = 0.2  # a wait for acks looks at the stop request this often
_CLOSE_NOW_S = 1.0  # closing after an outage or a stop: unacknowledged sends are dropped (and resent later)
_RECONNECT_PROBE_MS = 5_000  # bootstrap bound after an outage, so a stop request is answered meanwhile


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
    resent_from: list[int] = field(default_factory=list)
    started_over: bool = False

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
            *(["started over: the checkpoint's topics are empty on this broker"] if self.started_over else []),
            *([f"resent after broker outages from messages {self.resent_from}"] if self.resent_from else []),
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

    Raises :class:`InputError` for unusable input or a checkpoint that does not
    match the broker (:class:`CheckpointMismatchError`), :class:`ConfigError`
    for refused credentials, and :class:`ServiceUnavailableError` when the broker
    cannot be reached at the start. An outage after that is waited out.
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
    if config.prepare_process:
        warm_up()
    run = _Run(path, settings, options, config, stop, topic, selection, checkpoint)
    saved = Saved() if options.from_scratch else checkpoint.load()
    started = time.monotonic()
    delay = config.retry_initial_s
    try:
        while True:
            try:
                saved = run.attempt(saved)
                break
            except ServiceUnavailableError as exc:
                if run.reached is None:
                    raise
                saved = run.reached
                if saved.acked not in run.summary.resent_from[-1:]:  # one entry per outage, not per reconnect
                    run.summary.resent_from.append(saved.acked)
                log.warning(
                    "%s; resending from message %d in %.0f s (Ctrl-C saves the checkpoint and stops)",
                    redact(str(exc)),
                    saved.acked,
                    delay,
                )
            if stop.wait(delay):
                break
            delay = min(delay * 2, config.retry_max_s)
    finally:
        summary = run.summary
        summary.acked = saved.acked if run.reached is None else run.reached.acked
        summary.elapsed_s = time.monotonic() - started
        summary.late = run.counts.late
        summary.out_of_window = run.counts.out_of_window
        summary.interrupted = stop.is_set()
    if run.complete and not run.total:
        raise EmptyInputError(f"{path}: no rows in the selected window")
    return summary


class _Run:
    """One replay run: its attempts share the summary, the counts and the last checkpoint state."""

    def __init__(
        self,
        path: Path,
        settings: Settings,
        options: ReplayOptions,
        config: ProducerSettings,
        stop: threading.Event,
        topic: str,
        selection: Selection,
        checkpoint: Checkpoint,
    ) -> None:
        self.path = path
        self.settings = settings
        self.options = options
        self.config = config
        self.stop = stop
        self.topic = topic
        self.topics = [topic, settings.topics.dead_letter]
        self.selection = selection
        self.checkpoint = checkpoint
        self.summary = ReplaySummary(topic=topic, checkpoint=checkpoint.path)
        self.counts = EventCounts()
        self.run_start: int | None = None
        self.reached: Saved | None = None  # the checkpoint state once a broker answered in this run
        self.complete = False
        self.total: int | None = None  # messages in the selection, once the input was read to the end
        kafka = settings.kafka
        self.quiet_limit_s = (kafka.delivery_timeout_ms + kafka.request_timeout_ms) / 1000 + 5

    def attempt(self, saved: Saved) -> Saved:
        """Connect, check the checkpoint against the broker, publish from the resume point; the state saved last."""
        producer = _connect(self.settings, self.topics, self.options.partitions, self.reached is not None)
        tracker: AckTracker | None = None
        identity = None
        flush_s = self.settings.kafka.delivery_timeout_ms / 1000  # e.g. bad input half-way: let the rest land
        try:
            try:
                now = observe(self.settings.kafka, self.topics, self.settings.kafka.request_timeout_ms / 1000)
                start = self._resume_point(saved, now)
                identity = now.identity()
                ends = {(t, p): end for t, by_partition in saved.ends.items() for p, end in by_partition.items()}
                tracker = AckTracker(start, ends if start else {})
                self.reached = Saved(start, identity, saved.ends if start else {})
                self.run_start = start if self.run_start is None else min(self.run_start, start)
                with _frozen_heap():
                    self._publish(producer, tracker, identity, start)
            except KafkaError as exc:
                raise kafka_error(self.settings.kafka, exc) from exc
        except ServiceUnavailableError:
            flush_s = _CLOSE_NOW_S  # the broker is away: do not wait out its timeouts
            raise
        finally:
            close_producer(producer, _CLOSE_NOW_S if self.stop.is_set() else flush_s)  # a stop has drained already
            if tracker is not None:
                acked = tracker.acked_so_far()
                self.complete = acked == self.total and not self.stop.is_set()
                self.checkpoint.save(acked, self.complete, identity, tracker.ends)
                self.reached = _saved(acked, identity, tracker)
        return self.reached

    def _resume_point(self, saved: Saved, now: Target) -> int:
        start = resume_point(saved, now, self.topic, str(self.checkpoint.path))
        if start < saved.acked:
            log.warning(
                "checkpoint %s records %d messages acknowledged, but %s is empty on this broker: nothing of the "
                "earlier run is there, so every row is sent (once)",
                self.checkpoint.path,
                saved.acked,
                self.topic,
            )
            self.summary.started_over = True
        elif start:
            log.info("resuming after %d acknowledged messages (%s)", start, self.checkpoint.path)
        return start

    def _publish(self, producer: KafkaProducer, tracker: AckTracker, identity: dict[str, Any], start: int) -> None:
        options, config = self.options, self.config
        summary = self.summary
        summary.sent = summary.guests = summary.skipped_by_resume = 0
        summary.dead_lettered = Counter()
        self.counts = EventCounts()
        sink = _Sink(producer, self.topic, self.settings.topics.dead_letter, tracker)
        batches = (prepared_batches if config.prepare_process else local_batches)(
            self.path,
            self.selection,
            self.counts,
            sink.partitions,
            config.chunk_rows,
            options.encoding or config.encoding,
        )
        books = _Bookkeeping(self.checkpoint, tracker, identity, config.checkpoint_interval_s, options.progress)
        pacer = Pacer(options.speed, self.stop)
        run_start = self.run_start or 0
        seq = 0
        try:
            for batch in batches:
                handled = sink.send(batch, seq, start, pacer, self._room)
                _count(summary, batch, seq, handled, run_start)
                seq += handled
                books.tick(handled)
                if handled < len(batch):
                    break
            else:
                self.total = seq
        finally:
            books.close()
            batches.close()  # type: ignore[attr-defined]
        if self.stop.is_set():
            self._drain(tracker, time.monotonic() + config.stop_flush_s)
        else:
            while tracker.pending:
                tracker.wait(_ACK_POLL_S, self.quiet_limit_s)
                if self.stop.is_set():
                    self._drain(tracker, time.monotonic() + config.stop_flush_s)
                    return

    def _room(self, tracker: AckTracker) -> int:
        """How many more may be sent now: 0 after a stop request, else up to the unacknowledged bound (waited for)."""
        if self.stop.is_set() or not self._make_room(tracker):
            return 0
        return self.config.max_unacknowledged - tracker.pending

    def _make_room(self, tracker: AckTracker) -> bool:
        """Wait until fewer sends than the bound are unacknowledged; False when a stop request came first."""
        while tracker.pending >= self.config.max_unacknowledged:
            if self.stop.is_set():
                return False
            tracker.wait(_ACK_POLL_S, self.quiet_limit_s)
        return True

    def _drain(self, tracker: AckTracker, deadline: float) -> None:
        """After a stop request: count what the broker acknowledges until ``deadline``, then give up on the rest."""
        try:
            while tracker.pending and time.monotonic() < deadline:
                tracker.wait(min(_ACK_POLL_S, max(deadline - time.monotonic(), 0.0)), self.quiet_limit_s)
        except DeliveryError:
            pass


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects that exist before the sends.

    Why: kafka-python allocates several tracked objects per send (futures, kept
    until acknowledged), which triggers the collector's full passes; each would
    traverse everything the process already holds (pandas, pydantic, modules).
    Frozen, those are skipped: measured 1.5-4 us less per message on the sender's
    CPU. They are handed back to the collector when the sends are over.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _saved(acked: int, identity: dict[str, Any] | None, tracker: AckTracker) -> Saved:
    ends: dict[str, dict[int, int]] = {}
    for (topic, partition), end in tracker.ends.items():
        ends.setdefault(topic, {})[partition] = end
    return Saved(acked, identity, ends)


def _connect(settings: Settings, topics: list[str], partitions: int | None, reconnect: bool) -> KafkaProducer:
    """A producer, once the topics exist.

    The producer comes first, with the request timeout as bootstrap timeout, so an
    unreachable broker is reported after SEG_KAFKA__REQUEST_TIMEOUT_MS rather than
    kafka-python's fixed 30 s; after an outage (``reconnect``) within a few
    seconds, so that the retry loop answers a stop request meanwhile.
    """
    timeout_ms = settings.kafka.request_timeout_ms
    producer = make_producer(
        settings.kafka, bootstrap_timeout_ms=min(timeout_ms, _RECONNECT_PROBE_MS) if reconnect else timeout_ms
    )
    try:
        ensure_topics(
            settings.kafka, topics, partitions or settings.topics.partitions, settings.topics.replication_factor
        )
    except BaseException:
        close_producer(producer, 1.0)
        raise
    return producer


def _checkpoint(
    path: Path, topic: str, dead_letter: str, selection: Selection, options: ReplayOptions, config: ProducerSettings
) -> Checkpoint:
    identity = fingerprint(path, {"topic": topic, "dead_letter": dead_letter, "selection": asdict(selection)})
    if options.checkpoint is not None:
        return Checkpoint(options.checkpoint, identity)
    return Checkpoint.in_dir(config.checkpoint_dir, identity)


class _Sink:
    """Sends a batch's messages with their sequence headers and tracks the broker's answers.

    Invoice lines go to the partition :mod:`shared.partitioner` gave their key when
    they were prepared (customers and guests alike), never to kafka-python's own
    choice; dead letters go to the dead-letter topic without a key.
    """

    def __init__(self, producer: KafkaProducer, topic: str, dead_letter: str, tracker: AckTracker) -> None:
        self.producer = producer
        self.topic = topic
        self.dead_letter = dead_letter
        self.tracker = tracker
        self.partitions = sorted(producer.partitions_for(topic))

    def send(self, batch: Batch, first: int, start: int, pacer: Pacer, room: Callable[[AckTracker], int]) -> int:
        """Send the messages of ``batch`` (sequence numbers from ``first``) that are not below ``start``.

        Returns how many of the batch were dealt with: all, unless a stop request
        came first. ``room`` says how many may go out before it is asked again
        (the bound on unacknowledged sends); a paced send answers a stop request
        itself, since its wait may be long.
        """
        index = min(max(start - first, 0), len(batch))  # those below start are acknowledged already
        while index < len(batch):
            allowed = room(self.tracker)
            if not allowed:
                break
            index = self._send_range(batch, first, index, min(index + allowed, len(batch)), pacer)
            if pacer.stop.is_set():
                break
        return index

    def _send_range(self, batch: Batch, first: int, begin: int, end: int, pacer: Pacer) -> int:
        """Send ``batch[begin:end]``; return where it stopped (``end`` unless a paced wait saw a stop request)."""
        send, track, tracker, topic = self.producer.send, self.tracker.track, self.tracker, self.topic
        headers_of = {entry.index: entry.headers for entry in batch.dead}
        paced = pacer.speed is not None
        keys, values, partitions, times = batch.keys, batch.values, batch.partitions, batch.times_us
        for index in range(begin, end):
            key = keys[index]
            sequence = (SEQ_HEADER, str(first + index).encode())
            try:
                if key is None:
                    future = send(self.dead_letter, value=values[index], headers=[*headers_of[index], sequence])
                else:
                    if paced:
                        pacer.wait(times[index])
                        if pacer.stop.is_set():
                            return index
                    future = send(topic, key=key, value=values[index], partition=partitions[index], headers=[sequence])
            except KafkaError as exc:
                raise DeliveryError(
                    f"the producer refused message {first + index}: {redact(str(exc))}", acknowledged=tracker.acked
                ) from exc
            track(future)
        return end


def _count(summary: ReplaySummary, batch: Batch, first: int, handled: int, run_start: int) -> None:
    """Add the first ``handled`` messages of ``batch`` (sequence numbers from ``first``) to the summary."""
    skipped = min(max(run_start - first, 0), handled)
    summary.skipped_by_resume += skipped
    dead = [entry.reason for entry in batch.dead if skipped <= entry.index < handled]
    summary.dead_lettered.update(dead)
    summary.sent += handled - skipped - len(dead)
    summary.guests += sum(batch.guests[skipped:handled])


class _Bookkeeping:
    """Progress bar, ack watermark and periodic checkpoint, done every few thousand events."""

    def __init__(
        self, checkpoint: Checkpoint, tracker: AckTracker, identity: dict[str, Any], interval_s: float, progress: bool
    ) -> None:
        self.checkpoint = checkpoint
        self.tracker = tracker
        self.identity = identity
        self.interval_s = interval_s
        self.bar = tqdm(unit=" rows", disable=not progress, smoothing=0.1)
        self.saved_at = time.monotonic()

    def tick(self, events: int) -> None:
        self.bar.update(events)
        acked = self.tracker.advance()
        if time.monotonic() - self.saved_at >= self.interval_s:
            self.checkpoint.save(acked, False, self.identity, self.tracker.ends)
            self.saved_at = time.monotonic()

    def close(self) -> None:
        self.bar.close()
