"""The passes of the daily sweeps as one ordered clock: a tick is a midnight plus its pass number, in µs.

Each event day's sweep is ``passes`` Lloyd iterations over every customer at that
midnight, and each pass's centroids are all partitions' statistics of the pass
before, so every partition must have done a pass before any does the next one
(worker/segmentation/kmeans.py). A tick orders that progress in one integer:
midnight + pass (1 … ``passes``); comparing ticks compares progress, and the last
pass of a day comes before the first of the next.

>>> ticks = SweepTicks(passes=2)
>>> day = 86_400_000_000
>>> ticks.following(ticks.final(0)) == day + 1, ticks.previous(day + 1) == ticks.final(0)
(True, True)
>>> [tick - day for tick in ticks.between(ticks.final(0), ticks.final(day))]
[1, 2]
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.features.clock import MICROS_PER_DAY, day_start


@dataclass(frozen=True)
class SweepTicks:
    passes: int

    def final(self, midnight: int) -> int:
        """The tick of a midnight's last pass: its centroids are the ones in force during that day."""
        return midnight + self.passes

    def pass_of(self, tick: int) -> int:
        return tick - day_start(tick)

    def is_final(self, tick: int) -> bool:
        return self.pass_of(tick) == self.passes

    def following(self, tick: int) -> int:
        return day_start(tick) + MICROS_PER_DAY + 1 if self.is_final(tick) else tick + 1

    def previous(self, tick: int) -> int:
        return tick - 1 if self.pass_of(tick) > 1 else self.final(day_start(tick) - MICROS_PER_DAY)

    def between(self, after: int, until: int) -> list[int]:
        """The ticks after ``after`` up to ``until`` (inclusive), in order."""
        out = []
        tick = self.following(after)
        while tick <= until:
            out.append(tick)
            tick = self.following(tick)
        return out
