"""Event-time order across the owned partitions: what may be applied now, and in which order.

Why: every decision the worker publishes must be a function of the records
alone, not of when they arrived or how they were batched. Within a partition the
log fixes the order. Across partitions the worker applies records in event-time
order, (time, partition, offset), and only up to the *low watermark*: the
earliest of the partitions' latest event times. A record beyond it waits in its
partition's buffer, because another partition may still deliver something
earlier. Records later than the watermark are held, never reordered, so any
batching gives the same sequence.

Each record gets an *effective* time: its own, or its partition's clock if it
came late (older than a record before it in the same partition); so effective
times never go back within a partition, and what is held is always a suffix of
what was fetched. The partition's next offset to apply is the first held record.

Records are refused (dead-lettered) when their event time is absurd relative to
their partition's clock: more than ``future_tolerance`` ahead (a typo like year
2111 must not move time for everyone), or older than ``lateness_limit`` (too old
to be deduplicated exactly: the dedup sets of that day are gone). A record
within a day of the wall clock is live and only checked against the wall clock.

A partition with nothing buffered that received nothing for ``quiet_after_s``
wall seconds while caught up to its end stops holding the others back
(:meth:`EventAligner.release`): live operation, and the end of a catch-up run
(``flush``). That is the one place the wall clock enters: a replay whose
partitions each deliver records at least every ``quiet_after_s`` seconds
decides the same as any other replay of the same log.
"""

from __future__ import annotations

import time as wallclock
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from shared.exceptions import FutureEventError, LateEventError, RecordError
from shared.features.clock import MICROS_PER_DAY, NO_TIME
from worker.stream.decode import Records, Refused

LIVE_WINDOW_US = MICROS_PER_DAY
NEVER = np.iinfo(np.int64).max


@dataclass
class PartitionLane:
    """One owned partition: its clock, what is held, and how far it was fetched."""

    clock: int  # latest effective time accepted (held records included); NO_TIME before any
    applied_clock: int  # latest effective time released (the clock at the next offset to apply)
    fetched_end: int  # next offset after the last record fetched
    held: list[tuple[Records, np.ndarray]] = field(default_factory=list)  # records and their effective times
    held_count: int = 0
    last_record_at: float = 0.0  # wall time of the last fetched record
    highwater: int = -1

    def next_offset(self) -> int:
        return int(self.held[0][0].offset[0]) if self.held else self.fetched_end

    def caught_up(self) -> bool:
        return self.highwater >= 0 and self.fetched_end >= self.highwater


@dataclass
class Released:
    """Records that may be applied now, sorted by (effective time, partition, offset)."""

    records: Records
    effective: np.ndarray


class EventAligner:
    """Per-partition clocks and held records; decides what is released in which order."""

    def __init__(
        self,
        future_tolerance_us: int,
        lateness_limit_us: int,
        quiet_after_s: float,
        now: Callable[[], float] = wallclock.time,
        monotonic: Callable[[], float] = wallclock.monotonic,
    ) -> None:
        self.future_tolerance_us = future_tolerance_us
        self.lateness_limit_us = lateness_limit_us
        self.quiet_after_s = quiet_after_s
        self._now = now
        self._monotonic = monotonic
        self.lanes: dict[int, PartitionLane] = {}

    def own(self, partition: int, next_offset: int, clock: int) -> None:
        """Start (or restart) a partition at its stored offset and clock."""
        self.lanes[partition] = PartitionLane(
            clock=clock, applied_clock=clock, fetched_end=next_offset, last_record_at=self._monotonic()
        )

    def release_partitions(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.lanes.pop(partition, None)

    def held(self) -> int:
        return sum(lane.held_count for lane in self.lanes.values())

    def crowded(self, limit: int) -> set[int]:
        """Partitions holding more than ``limit`` records (their fetching should pause)."""
        return {p for p, lane in self.lanes.items() if lane.held_count > limit}

    # -- in -------------------------------------------------------------------------------------
    def accept(self, partition: int, records: Records, fetched_end: int, highwater: int | None) -> list[Refused]:
        """Add a partition's newly fetched records (offset order); returns those refused for their time."""
        lane = self.lanes[partition]
        lane.fetched_end = max(lane.fetched_end, fetched_end)
        if highwater is not None:
            lane.highwater = max(lane.highwater, highwater)
        if not len(records):
            return []
        lane.last_record_at = self._monotonic()
        keep, effective, refused = self._effective_times(lane, records)
        if keep is not None:
            records = records.take(keep)
        if len(records):
            lane.held.append((records, effective))
            lane.held_count += len(records)
            lane.clock = int(effective[-1])
        return refused

    def _effective_times(
        self, lane: PartitionLane, records: Records
    ) -> tuple[np.ndarray | None, np.ndarray, list[Refused]]:
        times = records.time
        start = lane.clock
        running = np.maximum.accumulate(np.concatenate([[start], times]))[:-1]
        now_us = to_micros_now(self._now())
        suspicious = (times > now_us + LIVE_WINDOW_US) | (
            (running != NO_TIME)
            & (
                ((times > running + self.future_tolerance_us) & (times < now_us - LIVE_WINDOW_US))
                | (times < running - self.lateness_limit_us)
            )
        )
        if not suspicious.any():
            return None, np.maximum(times, running), []
        return self._one_by_one(lane, records, now_us)

    def _one_by_one(
        self, lane: PartitionLane, records: Records, now_us: int
    ) -> tuple[np.ndarray, np.ndarray, list[Refused]]:
        """The same rule, record by record: a refused record does not move the clock."""
        clock = lane.clock
        keep, effective, refused = [], [], []
        for index, moment in enumerate(records.time.tolist()):
            error: RecordError | None = None
            if moment > now_us + LIVE_WINDOW_US:
                error = FutureEventError("event time is more than a day after the wall clock", "invoice_date")
            elif clock != NO_TIME and moment > clock + self.future_tolerance_us and moment < now_us - LIVE_WINDOW_US:
                days = (moment - clock) / MICROS_PER_DAY
                error = FutureEventError(
                    f"event time is {days:.1f} days after its partition's time (tolerance "
                    f"{self.future_tolerance_us / MICROS_PER_DAY:g}; SEG_WORKER_FUTURE_TOLERANCE_DAYS)",
                    "invoice_date",
                )
            elif clock != NO_TIME and moment < clock - self.lateness_limit_us:
                days = (clock - moment) / MICROS_PER_DAY
                error = LateEventError(
                    f"event time is {days:.1f} days before its partition's time, beyond the deduplication "
                    f"window ({self.lateness_limit_us / MICROS_PER_DAY:g} days; SEG_WORKER_DEDUP_RETENTION_DAYS)",
                    "invoice_date",
                )
            if error is not None:
                refused.append(
                    Refused(int(records.partition[index]), int(records.offset[index]), None, None, error, "apply")
                )
                continue
            clock = moment if clock == NO_TIME else max(clock, moment)
            keep.append(index)
            effective.append(clock)
        return np.array(keep, dtype=np.int64), np.array(effective, dtype=np.int64), refused

    # -- out ------------------------------------------------------------------------------------
    def low_watermark(self, flush: bool = False) -> int:
        """The earliest latest time of the partitions that still hold the others back.

        ``flush`` (every partition fetched to its end, at the end of a catch-up run)
        releases everything.
        """
        if flush:
            return NEVER
        now = self._monotonic()
        active = [
            lane.clock
            for lane in self.lanes.values()
            if not (lane.caught_up() and now - lane.last_record_at >= self.quiet_after_s)
        ]
        return min(active) if active else NEVER

    def reached(self) -> int:
        """The latest effective time accepted in any owned partition (NO_TIME before any)."""
        return max((lane.clock for lane in self.lanes.values()), default=NO_TIME)

    def advance(self, partition: int, moment: int) -> None:
        """The partition's time moves to ``moment`` without a record (it was swept there while quiet)."""
        lane = self.lanes[partition]
        if moment != NO_TIME and moment > lane.clock:
            lane.clock = moment
            if not lane.held:
                lane.applied_clock = moment

    def release(self, flush: bool = False, limit: int = NEVER) -> Released:
        """Everything held with an effective time before the low watermark and ``limit``, in event-time order.

        ``limit``: the first midnight whose centroids are not known yet (another
        worker has not swept its partitions there).
        """
        low = min(self.low_watermark(flush), limit)
        parts: list[Records] = []
        times: list[np.ndarray] = []
        for lane in self.lanes.values():
            kept: list[tuple[Records, np.ndarray]] = []
            for records, effective in lane.held:
                cut = int(np.searchsorted(effective, low, side="left"))
                if not cut:  # nothing of it is released: held as it is
                    kept.append((records, effective))
                    continue
                parts.append(records.take(slice(0, cut)) if cut < len(records) else records)
                times.append(effective[:cut])
                lane.applied_clock = int(effective[cut - 1])
                if cut < len(records):
                    kept.append((records.take(slice(cut, len(records))), effective[cut:]))
            lane.held = kept
            lane.held_count = sum(len(records) for records, _ in kept)
        records = Records.concat(parts)
        effective = np.concatenate(times) if times else np.zeros(0, dtype=np.int64)
        order = np.lexsort((records.offset, records.partition, effective))
        return Released(records.take(order), effective[order])

    def positions(self) -> dict[int, tuple[int, int]]:
        """Per partition: the next offset to apply and the clock there (what a commit stores)."""
        return {p: (lane.next_offset(), lane.applied_clock) for p, lane in self.lanes.items()}


def to_micros_now(seconds: float) -> int:
    """Wall time (seconds since the epoch, UTC) as µs, compared with naive event times."""
    return int(seconds * 1_000_000)
