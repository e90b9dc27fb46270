"""Records fetched by a child process, so decoding Kafka's wire format runs on another core.

Why: kafka-python decodes every record in Python, about as much work per record
as everything the worker then does with it, and in one process both share one
core (the GIL). So a child process consumes the owned partitions and hands each
poll over as one framed buffer (offsets, then keys and values back to back),
which the worker splits in a fraction of a microsecond per record.

The split of duties keeps exactly-once where it was:

* the worker stays the group member: its consumer is paused (it fetches nothing;
  it heartbeats, rebalances and commits offsets for lag tooling), and it decides
  where each owned partition starts, from the offsets stored in Redis;
* the child consumes without a group, exactly the partitions and start offsets
  the worker last ordered (:meth:`Fetcher.assign`). Each order opens a new epoch,
  and batches fetched under an older one are dropped, so nothing fetched before
  a rebalance or a reload is ever applied.

The child exits when the worker closes it, or when the worker's end of the pipe
closes because the worker died. If the child dies, the worker notices at its next
poll (:class:`~shared.exceptions.FetcherExitedError`) and starts a new one from
the offsets it has applied.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import NamedTuple

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import OffsetOutOfRangeError

from shared.exceptions import FetcherExitedError, OffsetsBeyondLogError
from shared.kafka_clients import make_consumer
from shared.logs import quiet_kafka_internals
from shared.settings import Settings, as_environment, load

_HEADER = struct.Struct("<qi")  # epoch, partitions in the frame
_PARTITION = struct.Struct("<iiq")  # partition, records, high watermark (-1: unknown)
_CHILD_POLL_MS = 200
# Records per frame at most (and at most ``batch_max_records``): the worker joins frames into
# batches of up to ``batch_max_records``; small frames keep the child's memory small.
_FRAME_RECORDS = 5_000
_QUEUED_FRAMES = 4
_PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process (/proc/sys/fs/pipe-max-size)
_NEXT_FRAME_WAIT_S = 0.01  # a frame already queued in the child arrives within this


class FetchedRecord(NamedTuple):
    """What the worker uses of a consumed record (built only for the few that need it: dead letters)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class FetchedBatch:
    """One partition's records of a poll, as columns: a record object per record cost more than its parsing."""

    topic: str
    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]

    def extend(self, later: FetchedBatch) -> None:
        """Append the same partition's next records."""
        self.offsets += later.offsets
        self.keys += later.keys
        self.values += later.values

    def record(self, index: int) -> FetchedRecord:
        return FetchedRecord(self.topic, self.partition, self.offsets[index], self.keys[index], self.values[index])


def encode(epoch: int, polled: dict[TopicPartition, list], highwater: dict[int, int]) -> bytes:
    """One poll as a frame: per partition its offsets, key and value lengths (-1: None), then the bytes."""
    heads, arrays, blobs = [], [], []
    for tp, records in polled.items():
        heads.append(_PARTITION.pack(tp.partition, len(records), highwater.get(tp.partition, -1)))
        keys = [r.key for r in records]
        values = [r.value for r in records]
        arrays.append(array("q", [r.offset for r in records]).tobytes())
        arrays.append(array("i", [-1 if k is None else len(k) for k in keys]).tobytes())
        arrays.append(array("i", [-1 if v is None else len(v) for v in values]).tobytes())
        blobs.append(b"".join(k for k in keys if k is not None))
        blobs.append(b"".join(v for v in values if v is not None))
    return b"".join([_HEADER.pack(epoch, len(heads)), *heads, *arrays, *blobs])


def encode_error(epoch: int, kind: str, detail: dict) -> bytes:
    """A frame that reports what stopped the fetcher's consumer (e.g. offsets beyond the log)."""
    return _HEADER.pack(epoch, -1) + json.dumps({"kind": kind, "detail": detail}).encode()


def decode(frame: bytes, topic: str) -> tuple[int, dict[int, FetchedBatch], dict[int, int]]:
    """The epoch, the records per partition and the high watermarks of one frame.

    An error frame (see :func:`encode_error`) raises :class:`~shared.exceptions.OffsetsBeyondLogError`.
    """
    epoch, count = _HEADER.unpack_from(frame)
    if count < 0:
        report = json.loads(frame[_HEADER.size :])
        raise OffsetsBeyondLogError({int(p): o for p, o in report["detail"].items()})
    position = _HEADER.size
    heads = []
    for _ in range(count):
        heads.append(_PARTITION.unpack_from(frame, position))
        position += _PARTITION.size
    columns = []
    for _, n, _ in heads:
        offsets, position = _column(frame, "q", n, position)
        key_lengths, position = _column(frame, "i", n, position)
        value_lengths, position = _column(frame, "i", n, position)
        columns.append((offsets, key_lengths, value_lengths))
    batch: dict[int, FetchedBatch] = {}
    for (partition, _, _), (offsets, key_lengths, value_lengths) in zip(heads, columns, strict=True):
        keys, position = _slices(frame, key_lengths, position)
        values, position = _slices(frame, value_lengths, position)
        batch[partition] = FetchedBatch(topic, partition, offsets, keys, values)
    highwater = {partition: mark for partition, _, mark in heads if mark >= 0}
    return epoch, batch, highwater


def _column(frame: bytes, typecode: str, n: int, start: int) -> tuple[list[int], int]:
    values = array(typecode)
    end = start + values.itemsize * n
    values.frombytes(frame[start:end])
    return values.tolist(), end


def _slices(frame: bytes, lengths: list[int], start: int) -> tuple[list[bytes | None], int]:
    """Consecutive byte strings of ``lengths`` (-1: None) from ``start``; and where they end."""
    out: list[bytes | None] = []
    begin = start
    for length in lengths:
        if length < 0:
            out.append(None)
            continue
        end = begin + length
        out.append(frame[begin:end])
        begin = end
    return out, begin


class Fetcher:
    """The worker's side: orders partitions and start offsets, receives batches."""

    def __init__(self, settings: Settings, topic: str, max_records: int, partition_bytes: int) -> None:
        self.topic = topic
        self.max_records = max_records
        self.epoch = 0
        self.paused: set[int] = set()
        self.highwater: dict[int, int] = {}
        orders_read, orders_write = os.pipe()
        frames_read, frames_write = os.pipe()
        with contextlib.suppress(AttributeError, OSError):  # Linux: a frame in a few reads, not hundreds
            fcntl.fcntl(frames_write, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self.frame_records = min(max_records, _FRAME_RECORDS)
        command = [sys.executable, "-m", __name__, topic, str(self.frame_records), str(partition_bytes)]
        command += [str(orders_read), str(frames_write)]
        # A plain child interpreter (not multiprocessing): no fork server or resource
        # tracker beside it, and its settings come the usual way, from the environment.
        self._process = subprocess.Popen(
            command,
            env=os.environ | as_environment(settings),
            pass_fds=(orders_read, frames_write),
        )
        os.close(orders_read)
        os.close(frames_write)
        self._orders = Connection(orders_write, readable=False)
        self._batches = Connection(frames_read, writable=False)

    @property
    def pid(self) -> int:
        """The child's process id (tests kill it to check that a replacement takes over)."""
        return self._process.pid

    def assign(self, starts: dict[int, int]) -> None:
        """Fetch exactly these partitions, from these offsets (-1: the beginning); drop what came before."""
        self.epoch += 1
        self.paused = set()
        order = {"epoch": self.epoch, "starts": {str(p): offset for p, offset in starts.items()}}
        with contextlib.suppress(OSError):  # a child that died is noticed, and replaced, at the next poll
            self._orders.send_bytes(json.dumps(order).encode())
        self.highwater = {}  # only what fetches under this order report counts

    def pause(self, partitions: set[int]) -> None:
        """Stop fetching ``partitions`` (their records wait in the worker), resume the others."""
        if partitions == self.paused:
            return
        self.paused = set(partitions)
        with contextlib.suppress(OSError):
            self._orders.send_bytes(json.dumps({"pause": sorted(partitions)}).encode())

    def poll(self, timeout_s: float) -> dict[int, FetchedBatch]:
        """At most ``max_records`` records fetched under the current epoch: the frames that have
        arrived, or the first to arrive within ``timeout_s``; {} if none does."""
        batch: dict[int, FetchedBatch] = {}
        records = 0
        deadline = time.monotonic() + timeout_s
        while records + self.frame_records <= self.max_records:  # the next frame cannot overshoot
            wait = max(deadline - time.monotonic(), 0.0) if not batch else _NEXT_FRAME_WAIT_S
            if not self._batches.poll(wait):
                break
            try:
                frame = self._batches.recv_bytes()
            except (EOFError, OSError):  # OSError: it died in the middle of a frame
                raise FetcherExitedError(f"the fetcher process exited with code {self._process.wait()}") from None
            epoch, fetched, highwater = decode(frame, self.topic)
            if epoch != self.epoch:
                continue
            self.highwater.update(highwater)
            for partition, part in fetched.items():
                records += len(part.offsets)
                if partition in batch:
                    batch[partition].extend(part)
                else:
                    batch[partition] = part
        return batch

    def close(self) -> None:
        """Stop the child and wait for it (a few seconds at most)."""
        with contextlib.suppress(OSError):  # the child is gone already
            self._orders.send_bytes(json.dumps({"stop": True}).encode())
        self._orders.close()
        deadline = time.monotonic() + 5
        while self._process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(EOFError, OSError):
                if self._batches.poll(0.1):
                    self._batches.recv_bytes()  # unblocks a child waiting to send
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._batches.close()


def serve(topic: str, frame_records: int, partition_bytes: int, orders: Connection, batches: Connection) -> None:
    """The child: consume what was last ordered, send every poll; exit on a stop order or a closed pipe."""
    # Ctrl-C or a SIGTERM to the process group reaches us too; the worker stops us itself
    # once its last batch is in, and we exit on our own if it dies (its pipe closes).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    quiet_kafka_internals()
    # No automatic reset: a stored offset beyond the log is reported, never silently replaced.
    consumer = make_consumer(
        load(Settings).kafka,
        None,
        max_poll_records=frame_records,
        max_partition_fetch_bytes=partition_bytes,
        auto_offset_reset="none",
    )
    # Frames wait here while the worker is busy, so the consumer keeps fetching; bounded, so
    # a slow worker slows the fetching down instead of filling memory.
    frames: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUED_FRAMES)
    threading.Thread(target=_send, args=(frames, batches), name="fetcher-send", daemon=True).start()
    epoch = 0
    reported: dict[int, int] = {}  # the high watermark last sent per partition
    try:
        while True:
            idle = not consumer.assignment()
            while orders.poll(0.5 if idle else 0):
                order = json.loads(orders.recv_bytes())
                if order.get("stop"):
                    return
                if "pause" in order:
                    _pause(consumer, topic, set(order["pause"]))
                    continue
                epoch = order["epoch"]
                reported = {}
                _apply(consumer, topic, {int(p): offset for p, offset in order["starts"].items()})
                idle = not consumer.assignment()
            if idle:
                continue
            try:
                polled = consumer.poll(timeout_ms=_CHILD_POLL_MS)
            except OffsetOutOfRangeError as exc:
                beyond = {str(tp.partition): offset for tp, offset in exc.args[0].items()}
                frames.put(encode_error(epoch, "offsets_beyond_log", beyond))
                consumer.assign([])
                continue
            # Every assigned partition's high watermark once it is known or moves, with or without
            # records: the worker sees that a partition is caught up, or that its start lies beyond the log.
            marks = {tp.partition: mark for tp in consumer.assignment() if (mark := consumer.highwater(tp)) is not None}
            moved = {
                tp: []
                for tp in consumer.assignment()
                if tp.partition in marks and reported.get(tp.partition) != marks[tp.partition]
            }
            if polled or moved:
                frames.put(encode(epoch, moved | polled, marks))
                reported.update(marks)
    except EOFError:
        return  # the worker is gone
    finally:
        consumer.close()


def _send(frames: queue.Queue[bytes], batches: Connection) -> None:
    while True:
        frame = frames.get()
        try:
            batches.send_bytes(frame)
        except OSError:
            os._exit(0)  # the worker is gone: nothing to flush, its next owner fetches again


def _pause(consumer: KafkaConsumer, topic: str, partitions: set[int]) -> None:
    owned = consumer.assignment()
    consumer.resume(*[tp for tp in owned if tp.partition not in partitions])
    consumer.pause(*[tp for tp in owned if tp.partition in partitions])


def _apply(consumer: KafkaConsumer, topic: str, starts: dict[int, int]) -> None:
    partitions = [TopicPartition(topic, p) for p in sorted(starts)]
    consumer.assign(partitions)
    for tp in partitions:
        if starts[tp.partition] >= 0:
            consumer.seek(tp, starts[tp.partition])
        else:
            consumer.seek_to_beginning(tp)


if __name__ == "__main__":
    _topic, _frame_records, _partition_bytes, _orders_fd, _frames_fd = sys.argv[1:]
    serve(
        _topic,
        int(_frame_records),
        int(_partition_bytes),
        Connection(int(_orders_fd), writable=False),
        Connection(int(_frames_fd), readable=False),
    )
