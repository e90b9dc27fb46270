"""Records fetched and decoded by a child process, so that work runs on another core.

Why: consuming (Kafka's wire format) and decoding the values into columns
(:func:`worker.stream.decode.decode`, the dedup digests included) are per-record
work that needs nothing the worker holds, and in one process everything shares one
core (the GIL). So a child process consumes the owned partitions with librdkafka
(:func:`shared.kafka_options.librdkafka_options`), decodes each poll and hands it
over as one frame: the records as consumed (a dead letter carries the original),
the decoded columns, and each refusal with its reason. The worker unpacks a frame
in about 0.12 µs per record (repeating texts arrive coded, see ``_CODED``).

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

import bisect
import contextlib
import fcntl
import json
import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import NamedTuple

import msgspec
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as Partition

from shared.exceptions import FetcherExitedError, OffsetsBeyondLogError, RecordError
from shared.kafka_options import librdkafka_options
from shared.logs import configure_logging
from shared.redaction import redact
from shared.settings import KafkaSettings, Settings, as_environment, load
from worker.stream.decode import Records, Refused, objects
from worker.stream.decode import decode as decode_values

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<qi")  # epoch, partitions in the frame
_CHILD_POLL_MS = 200
# Records per frame at most (and at most ``batch_max_records``): the worker joins frames into
# batches of up to ``batch_max_records``; small frames keep the child's memory small.
_FRAME_RECORDS = 5_000
_QUEUED_FRAMES = 4
_PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process (/proc/sys/fs/pipe-max-size)
_NEXT_FRAME_WAIT_S = 0.01  # a frame already queued in the child arrives within this


class RawColumn:
    """Keys or values as consumed, end to end in one byte string, each sliced out only when asked for.

    The worker needs a record's key and value as consumed only to dead-letter it; slicing
    every one of them out of the frame cost it about a microsecond per record.
    """

    def __init__(self, blob: bytes, lengths: np.ndarray) -> None:
        self.blob = blob
        self.lengths = lengths  # int32 per record; -1: None
        self._ends: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> bytes | None:
        length = int(self.lengths[index])
        if length < 0:
            return None
        if self._ends is None:
            self._ends = np.cumsum(np.maximum(self.lengths, 0))
        end = int(self._ends[index])
        return self.blob[end - length : end]

    def __iter__(self) -> Iterator[bytes | None]:
        return (self[index] for index in range(len(self)))

    @classmethod
    def joined(cls, columns: list[RawColumn]) -> RawColumn:
        return cls(b"".join(column.blob for column in columns), np.concatenate([c.lengths for c in columns]))


@dataclass
class FetchedBatch:
    """One partition's records of a poll: as consumed (for dead letters) and as decoded by the child."""

    topic: str
    partition: int
    offsets: list[int]
    keys: RawColumn
    values: RawColumn
    records: Records  # the values that decoded, in offset order
    refused: list[Refused]  # the values that did not, in offset order

    @classmethod
    def joined(cls, parts: list[FetchedBatch]) -> FetchedBatch:
        """One partition's consecutive batches as one, each column concatenated once."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            parts[0].topic,
            parts[0].partition,
            [offset for part in parts for offset in part.offsets],
            RawColumn.joined([part.keys for part in parts]),
            RawColumn.joined([part.values for part in parts]),
            Records.concat([part.records for part in parts]),
            [refusal for part in parts for refusal in part.refused],
        )


class Columns(NamedTuple):
    """One partition's records of a poll in the child, column by column."""

    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]


# A decoded column's place in a frame: numbers as their bytes; texts that repeat (an invoice's lines,
# a customer's, a country's) as their distinct values and an int32 index into them each, so the worker
# makes one string per distinct value and holds one (not one per record) while records wait; the
# dedup digests, unique per record, as a msgpack list.
_NUMBERS = {"offset": "q", "time": "q", "quantity": "q", "price": "d", "seen_bucket": "q"}
_CODED = ("invoice_no", "stock_code", "customer_id", "country")
_TEXTS = ("seen_member",)
_RECORD_ERRORS = {kind.kind: kind for kind in (RecordError, *RecordError.__subclasses__())}
_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder().decode


def encode(epoch: int, polled: dict[int, Columns], highwater: dict[int, int]) -> bytes:
    """One poll as a frame, its values decoded here (:func:`worker.stream.decode.decode`).

    Per partition: the offsets, keys and values as consumed (a dead letter carries the
    original), the decoded columns, and each refusal's offset and error. The worker's
    main thread then only unpacks: decoding and the dedup digests run on this process's core.
    """
    parts = []
    for partition, (offsets, keys, values) in polled.items():
        records, refused = decode_values(partition, offsets, keys, values) if offsets else (Records.empty(), [])
        parts.append(
            [
                partition,
                highwater.get(partition, -1),
                array("q", offsets).tobytes(),
                array("i", [-1 if k is None else len(k) for k in keys]).tobytes(),
                array("i", [-1 if v is None else len(v) for v in values]).tobytes(),
                b"".join(k for k in keys if k is not None),
                b"".join(v for v in values if v is not None),
                [getattr(records, name).tobytes() for name in _NUMBERS],
                [_coded(getattr(records, name).tolist()) for name in _CODED],
                [getattr(records, name).tolist() for name in _TEXTS],
                [[r.offset, r.error.kind, str(r.error), r.error.field] for r in refused],
            ]
        )
    return _HEADER.pack(epoch, len(parts)) + _pack(parts)


def _coded(column: list[str | None]) -> list:
    """A text column as [its distinct values, each entry's index into them as int32 bytes]."""
    index: dict[str | None, int] = {}
    codes = array("i", [index.setdefault(value, len(index)) for value in column])
    return [list(index), codes.tobytes()]


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
    batch: dict[int, FetchedBatch] = {}
    highwater: dict[int, int] = {}
    for part in _unpack(memoryview(frame)[_HEADER.size :]):
        partition, mark, offsets, key_lengths, value_lengths, keys, values, numbers, coded, texts, refusals = part
        offsets_ = _column("q", offsets)
        keys_ = RawColumn(keys, np.frombuffer(key_lengths, dtype=np.int32))
        values_ = RawColumn(values, np.frombuffer(value_lengths, dtype=np.int32))
        numeric = zip(_NUMBERS.items(), numbers, strict=True)
        columns = {name: np.frombuffer(raw, dtype=code) for (name, code), raw in numeric}
        columns |= {
            name: objects(distinct)[np.frombuffer(codes, dtype=np.int32)]
            for name, (distinct, codes) in zip(_CODED, coded, strict=True)
        }
        columns |= {name: objects(column) for name, column in zip(_TEXTS, texts, strict=True)}
        records = Records(partition=np.full(len(columns["offset"]), partition, dtype=np.int64), **columns)
        refused = []
        for offset, kind, message, field in refusals:
            at = bisect.bisect_left(offsets_, offset)
            error = _RECORD_ERRORS.get(kind, RecordError)(message, field)  # an unknown kind: the base error
            refused.append(Refused(partition, offset, keys_[at], values_[at], error))
        batch[partition] = FetchedBatch(topic, partition, offsets_, keys_, values_, records, refused)
        if mark >= 0:
            highwater[partition] = mark
    return epoch, batch, highwater


def _column(typecode: str, raw: bytes) -> list[int]:
    values = array(typecode)
    values.frombytes(raw)
    return values.tolist()


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
        parts: dict[int, list[FetchedBatch]] = {}
        records = 0
        deadline = time.monotonic() + timeout_s
        while records + self.frame_records <= self.max_records:  # the next frame cannot overshoot
            wait = max(deadline - time.monotonic(), 0.0) if not parts else _NEXT_FRAME_WAIT_S
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
                parts.setdefault(partition, []).append(part)
        return {partition: FetchedBatch.joined(each) for partition, each in parts.items()}

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
    configure_logging(level=logging.WARNING)
    consumer = _consumer(load(Settings).kafka, partition_bytes, frame_records)
    # Frames wait here while the worker is busy, so the consumer keeps fetching; bounded, so
    # a slow worker slows the fetching down instead of filling memory.
    frames: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUED_FRAMES)
    threading.Thread(target=_send, args=(frames, batches), name="fetcher-send", daemon=True).start()
    epoch = 0
    positions: dict[int, int] = {}  # per assigned partition, the next offset to hand over (-1: its first)
    reported: dict[int, int] = {}  # the high watermark last sent per partition
    try:
        while True:
            while orders.poll(0 if positions else 0.5):
                order = json.loads(orders.recv_bytes())
                if order.get("stop"):
                    return
                if "pause" in order:
                    _pause(consumer, topic, set(positions), set(order["pause"]))
                    continue
                epoch = order["epoch"]
                reported = {}
                positions = {int(p): offset for p, offset in order["starts"].items()}
                consumer.assign([Partition(topic, p, o if o >= 0 else OFFSET_BEGINNING) for p, o in positions.items()])
                if positions:  # an order starts unpaused, but librdkafka keeps a partition's pause across assign
                    consumer.resume([Partition(topic, p) for p in positions])
            if not positions:
                continue
            polled, beyond = _take(consumer.consume(frame_records, _CHILD_POLL_MS / 1000), positions)
            if beyond:
                frames.put(encode_error(epoch, "offsets_beyond_log", {str(p): o for p, o in beyond.items()}))
                positions = {}
                consumer.assign([])
                continue
            # Every assigned partition's high watermark once it is known or moves, with or without
            # records: the worker sees that a partition is caught up, or that its start lies beyond the log.
            marks = {p: mark for p in positions if (mark := _highwater(consumer, topic, p)) >= 0}
            moved = {p: Columns([], [], []) for p, mark in marks.items() if reported.get(p) != mark}
            if polled or moved:
                frames.put(encode(epoch, moved | polled, marks))
                reported.update(marks)
    except EOFError:
        return  # the worker is gone
    finally:
        consumer.close()


def _consumer(settings: KafkaSettings, partition_bytes: int, frame_records: int) -> Consumer:
    """A consumer that never joins its group (``assign`` only) and never commits.

    librdkafka needs a group id even so; no automatic reset: a start beyond the log is
    reported (:func:`_take`), never silently replaced. It prefetches one response's bytes, or
    two frames' records per partition, at most (librdkafka's defaults hold 100,000 records per
    partition); when that is full it fetches again 10 ms later, not after librdkafka's default
    second, so a small queue does not starve the worker.
    """
    return Consumer(
        librdkafka_options(settings)
        | {
            "group.id": f"{settings.client_id}-fetcher",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            "max.partition.fetch.bytes": partition_bytes,
            "fetch.max.bytes": max(partition_bytes, 50 * 1024 * 1024),
            "queued.max.messages.kbytes": partition_bytes // 1024,
            "queued.min.messages": 2 * frame_records,
            "fetch.queue.backoff.ms": 10,
        },
        logger=log,
    )


def _take(messages: list[Message], positions: dict[int, int]) -> tuple[dict[int, Columns], dict[int, int]]:
    """The records of a consume call per partition, and the partitions whose start lies beyond the log.

    A record before a partition's position was fetched under an earlier order and is
    dropped (librdkafka drops them itself; this makes it a rule of ours too).
    """
    polled: dict[int, Columns] = {}
    beyond: dict[int, int] = {}
    for message in messages:
        error = message.error()
        partition = message.partition()
        if error is not None:
            if error.code() == KafkaError._AUTO_OFFSET_RESET and partition in positions:
                beyond[partition] = positions[partition]
            elif error.fatal():
                raise KafkaException(error)
            else:
                log.warning("fetching %s: %s", partition, redact(error.str()))
            continue
        offset = message.offset()
        position = positions.get(partition)
        if position is None or offset < position:
            continue
        positions[partition] = offset + 1
        columns = polled.get(partition)
        if columns is None:
            columns = polled[partition] = Columns([], [], [])
        columns.offsets.append(offset)
        columns.keys.append(message.key())
        columns.values.append(message.value())
    return polled, beyond


def _highwater(consumer: Consumer, topic: str, partition: int) -> int:
    """The high watermark of the partition's last fetch response; -1 before the first."""
    return consumer.get_watermark_offsets(Partition(topic, partition), cached=True)[1]


def _send(frames: queue.Queue[bytes], batches: Connection) -> None:
    while True:
        frame = frames.get()
        try:
            batches.send_bytes(frame)
        except OSError:
            os._exit(0)  # the worker is gone: nothing to flush, its next owner fetches again


def _pause(consumer: Consumer, topic: str, owned: set[int], partitions: set[int]) -> None:
    consumer.resume([Partition(topic, p) for p in owned - partitions])
    consumer.pause([Partition(topic, p) for p in owned & partitions])


if __name__ == "__main__":
    _topic, _frame_records, _partition_bytes, _orders_fd, _frames_fd = sys.argv[1:]
    serve(
        _topic,
        int(_frame_records),
        int(_partition_bytes),
        Connection(int(_orders_fd), writable=False),
        Connection(int(_frames_fd), readable=False),
    )
