"""Read, validate, order and serialise in a child process; the parent only sends.

Why: kafka-python's ``send()`` costs the main thread about as much as everything
before it (decompressing, parsing, hashing event ids, JSON). Running that first
half in a separate process lets both halves use a CPU each. The child produces
exactly the deterministic stream of :func:`publishable_events` (so sequence numbers
and resume are unaffected), as ready-to-send bytes, in bounded batches.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import traceback
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from producer.events import EventCounts, Selection, publishable_events
from producer.validation import ParsedLine
from shared import exceptions
from shared.contracts.dead_letter import DeadLetter

BATCH = 2_000
QUEUE_BATCHES = 16  # bounds memory: at most this many batches wait for the sender


class LineMessage(NamedTuple):
    """An invoice line ready for the wire: keyed by customer, paced by its event time ``at``."""

    key: bytes
    value: bytes
    at: datetime
    guest: bool
    headers: tuple[tuple[str, bytes], ...] = ()


class DeadLetterMessage(NamedTuple):
    """A dead letter ready for the wire (no key), with its ``reason`` for the summary."""

    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    key: None = None


Message = LineMessage | DeadLetterMessage


def to_message(event: ParsedLine | DeadLetter) -> Message:
    """Serialise one event exactly as it is published."""
    if isinstance(event, ParsedLine):
        key = event.partition_key.encode()
        return LineMessage(key, event.to_json(), event.invoice_date, event.customer_id is None)
    return DeadLetterMessage(event.model_dump_json().encode(), tuple(event.headers()), event.reason)


def local_messages(
    path: Path, selection: Selection, counts: EventCounts, chunk_rows: int, encoding: str
) -> Iterator[Message]:
    """The same messages prepared in this process (one CPU, or no importable ``__main__``)."""
    return (to_message(event) for event in publishable_events(path, selection, counts, chunk_rows, encoding))


def prepared_messages(
    path: Path, selection: Selection, counts: EventCounts, chunk_rows: int, encoding: str
) -> Iterator[Message]:
    """The messages of :func:`publishable_events`, prepared in a child process.

    ``counts`` is filled in when the child finishes; errors raised in the child
    (e.g. :class:`CorruptInputError`) are raised here with their message.
    """
    context = multiprocessing.get_context("forkserver")
    channel: Any = context.Queue(maxsize=QUEUE_BATCHES)
    child = context.Process(
        target=_produce,
        args=(channel, os.getpid(), path, selection, chunk_rows, encoding),
        name="replay-prepare",
        daemon=True,
    )
    child.start()
    try:
        while True:
            kind, payload = _receive(channel, child)
            if kind == "batch":
                yield from payload
            elif kind == "done":
                for name, value in payload.items():
                    setattr(counts, name, value)
                return
            else:
                raise _rebuild(*payload)
    finally:
        if child.is_alive():
            child.terminate()
        child.join(timeout=10)
        channel.close()


def _receive(channel: Any, child: Any) -> tuple[str, Any]:
    while True:
        try:
            return channel.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"the prepare process died (exit code {child.exitcode})") from None


def _produce(channel: Any, parent: int, path: Path, selection: Selection, chunk_rows: int, encoding: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop, then ends us
    counts = EventCounts()
    batch: list[Message] = []
    try:
        for event in publishable_events(path, selection, counts, chunk_rows, encoding):
            batch.append(to_message(event))
            if len(batch) == BATCH:
                _put(channel, parent, ("batch", batch))
                batch = []
        _put(channel, parent, ("batch", batch))
        _put(channel, parent, ("done", vars(counts)))
    except exceptions.SegmentationError as exc:
        _put(channel, parent, ("error", (type(exc).__name__, str(exc))))
    except Exception:
        _put(channel, parent, ("error", ("RuntimeError", traceback.format_exc())))


def _put(channel: Any, parent: int, item: tuple[str, Any]) -> None:
    """Put with backpressure; exit if the parent is gone (SIGKILL leaves no one to end us)."""
    while True:
        try:
            channel.put(item, timeout=1.0)
            return
        except queue.Full:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)  # not sys.exit: the queue's feeder thread would wait forever for a reader


def _rebuild(name: str, message: str) -> Exception:
    kind = getattr(exceptions, name, None)
    if isinstance(kind, type) and issubclass(kind, exceptions.SegmentationError):
        return kind(message)
    return RuntimeError(f"the prepare process failed: {message}")
