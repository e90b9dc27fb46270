"""The prepared stream in batches: what the sender needs of each message, column by column.

Why columns: the stream crosses a process boundary (:mod:`producer.prepare`), and
the sender's CPU is the replay's bottleneck. A batch of a few lists of bytes and
ints encodes and decodes in C (msgspec MessagePack, no pickle), where an object
per message would cost the sender about as much as a send.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shared.contracts.dead_letter import DeadLetter

BATCH = 2_048  # messages per batch; also how often the sender does its bookkeeping

Row = tuple[int, bytes | None, bytes, int, bool]
"""A message ready for the wire: event time (µs since 1970), key, value, partition, guest?"""


class DeadLetterEntry(msgspec.Struct, array_like=True, frozen=True):
    """A dead letter at ``index`` of its batch: its headers and its ``reason`` for the summary."""

    index: int
    reason: str
    headers: list[tuple[str, bytes]]


class Batch(msgspec.Struct, array_like=True, frozen=True):
    """Consecutive messages of the stream; the lists are parallel, one entry per message."""

    times_us: list[int]  # event time for pacing; 0 for a dead letter
    keys: list[bytes | None]  # None: a dead letter (no key, sent to the dead-letter topic)
    values: list[bytes]
    partitions: list[int]  # of the invoices topic; -1 for a dead letter
    guests: list[bool]
    dead: list[DeadLetterEntry]

    def __len__(self) -> int:
        return len(self.values)


ENCODER = msgspec.msgpack.Encoder()
DECODER = msgspec.msgpack.Decoder(Batch)


class BatchBuilder:
    """Collects the stream's messages in order and cuts them into batches of ``size``."""

    def __init__(self, size: int = BATCH) -> None:
        self.size = size
        self._rows: list[Row] = []
        self._dead: list[DeadLetterEntry] = []

    def lines(self, rows: Iterable[Row]) -> None:
        self._rows.extend(rows)

    def dead_letter(self, letter: DeadLetter) -> None:
        self._dead.append(DeadLetterEntry(len(self._rows), letter.reason, letter.headers()))
        self._rows.append((0, None, letter.model_dump_json().encode(), -1, False))

    def full(self) -> list[Batch]:
        """The complete batches collected so far, taken out."""
        return self._take(len(self._rows) // self.size * self.size)

    def rest(self) -> list[Batch]:
        """Everything collected, the last batch possibly short (at the end of the stream)."""
        return self._take(len(self._rows))

    def _take(self, count: int) -> list[Batch]:
        rows, self._rows = self._rows[:count], self._rows[count:]
        dead = self._dead
        self._dead = [
            DeadLetterEntry(entry.index - count, entry.reason, entry.headers) for entry in dead if entry.index >= count
        ]
        batches = []
        for start in range(0, count, self.size):
            end = min(start + self.size, count)
            times, keys, values, partitions, guests = (list(column) for column in zip(*rows[start:end], strict=True))
            entries = [
                DeadLetterEntry(entry.index - start, entry.reason, entry.headers)
                for entry in dead
                if start <= entry.index < end
            ]
            batches.append(Batch(times, keys, values, partitions, guests, entries))
        return batches
