"""``GET /changes/stream``: segment changes as server-sent events, for consumers that do not speak Kafka.

Each event is one distinct change (repeats on the topic are dropped by
``(customer, sequence)``, see :mod:`worker.api.changes`)::

    id: 0:1042,1:977,2:1011
    event: segment-change
    data: {"customer_id": "17850", "sequence": 4, ...}   (the SegmentChange contract)

Without ``Last-Event-ID`` the stream starts now; with one it starts right after
that event, across all partitions. A comment line is sent every
:data:`KEEPALIVE_S` seconds without a change, so proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from worker.api.changes import ChangeLog, Delivered, decode_position, encode_position, read_range

KEEPALIVE_S = 15.0
RETRY_MS = 2_000


def _event(entry: Delivered, positions: dict[int, int]) -> str:
    positions[entry.partition] = entry.offset + 1
    return f"id: {encode_position(positions)}\nevent: segment-change\ndata: {entry.change.model_dump_json()}\n\n"


def _read(log: ChangeLog, gaps: dict[int, tuple[int, int]]) -> list[Delivered]:
    return list(read_range(log.kafka, log.topic, gaps))


async def change_events(
    log: ChangeLog,
    last_event_id: str | None,
    disconnected: Callable[[], Awaitable[bool]],
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """The event stream of one client, until it disconnects."""
    resumed = decode_position(last_event_id) if last_event_id else None
    positions = resumed if resumed is not None else log.positions()
    for partition in log.positions():
        positions.setdefault(partition, 0)
    yield f"retry: {RETRY_MS}\n\n"
    cursor = -1
    while not await disconnected():
        cursor, entries, gaps = log.after(cursor, positions)
        if gaps:
            missed = await asyncio.to_thread(_read, log, gaps)
            for entry in missed:
                if not log.is_repeat(entry.partition, entry.offset):
                    yield _event(entry, positions)
            for partition, (_, end) in gaps.items():  # read through, repeats at the end included
                positions[partition] = max(positions.get(partition, 0), end)
            continue
        for entry in entries:
            yield _event(entry, positions)
        if not entries and not await log.wait(keepalive_s):
            yield ": keep-alive\n\n"
