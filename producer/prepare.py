"""Read, validate, order and serialise in a child process; the parent only sends.

Why: kafka-python's ``send()`` holds the main thread's CPU; everything before it
(decompressing, parsing, hashing event ids, JSON) runs beside it in a child
process. The child produces exactly the deterministic stream of
:func:`publishable_batches` (so sequence numbers and resume are unaffected), as
ready-to-send bytes, in bounded batches encoded with MessagePack.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import queue
import signal
import traceback
from collections.abc import Iterator
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from producer.batch import DECODER, ENCODER, Batch
from producer.events import EventCounts, Selection, publishable_batches
from shared import exceptions

PIPE_BYTES = 1 << 20  # the most an unprivileged process may ask for by default (/proc/sys/fs/pipe-max-size)
QUEUE_BATCHES = 32  # bounds memory (~20 MB): at most this many batches wait for the sender, a few chunks' worth


def warm_up() -> None:
    """Start the fork server now, with the preparing modules imported, so the child starts at once later.

    Why: a fresh interpreter takes about a second to import pandas and the
    rest; started before the replay connects to the broker, that happens
    meanwhile instead of while the sender waits for its first batch.
    """
    multiprocessing.set_forkserver_preload(["__main__", __name__])
    forkserver.ensure_running()


def local_batches(
    path: Path, selection: Selection, counts: EventCounts, partitions: list[int], chunk_rows: int, encoding: str
) -> Iterator[Batch]:
    """The same batches prepared in this process (one CPU, or no importable ``__main__``)."""
    return publishable_batches(path, selection, counts, partitions, chunk_rows, encoding)


def prepared_batches(
    path: Path, selection: Selection, counts: EventCounts, partitions: list[int], chunk_rows: int, encoding: str
) -> Iterator[Batch]:
    """The batches of :func:`publishable_batches`, prepared in a child process (MessagePack between the two).

    ``counts`` is filled in when the child finishes; errors raised in the child
    (e.g. :class:`CorruptInputError`) are raised here with their message.
    """
    context = multiprocessing.get_context("forkserver")
    channel: Any = context.Queue(maxsize=QUEUE_BATCHES)
    _widen(channel._writer)  # multiprocessing.Queue has no public handle on its pipe
    child = context.Process(
        target=_produce,
        args=(channel, os.getpid(), path, selection, partitions, chunk_rows, encoding),
        name="replay-prepare",
        daemon=True,
    )
    child.start()
    try:
        while True:
            kind, payload = _receive(channel, child)
            if kind == "batch":
                yield DECODER.decode(payload)
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


def _widen(connection: Any) -> None:
    """Let the pipe under the queue hold a whole batch (~650 KB; Linux gives a pipe 64 KiB).

    Why: through a 64 KiB pipe a batch crosses in about ten write/read round
    trips, each waiting for the other process to be scheduled and to take its
    GIL back; on a busy machine that held the sender up for milliseconds per
    batch. Where the pipe cannot be resized, it stays as it is.
    """
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(connection.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _receive(channel: Any, child: Any) -> tuple[str, Any]:
    while True:
        try:
            return channel.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"the prepare process died (exit code {child.exitcode})") from None


def _produce(
    channel: Any,
    parent: int,
    path: Path,
    selection: Selection,
    partitions: list[int],
    chunk_rows: int,
    encoding: str,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop, then ends us
    counts = EventCounts()
    try:
        for batch in publishable_batches(path, selection, counts, partitions, chunk_rows, encoding):
            _put(channel, parent, ("batch", ENCODER.encode(batch)))
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
