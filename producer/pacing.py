"""Event-time pacing: replay at ``speed`` event-seconds per wall second.

Why: a demo should show segments move in (compressed) real time; ``--speed 86400``
plays one event-day per second. Sleeping waits on the stop event so Ctrl-C is
prompt even during a long gap between invoices.
"""

from __future__ import annotations

import threading
import time


class Pacer:
    """Sleeps until an event's compressed time has come; ``speed=None`` never sleeps."""

    def __init__(self, speed: float | None, stop: threading.Event) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.stop = stop
        self._origin: tuple[int, float] | None = None

    def wait(self, at_us: int) -> None:
        """Block until event time ``at_us`` (microseconds) is due (the first event sets the origin)."""
        if self.speed is None:
            return
        if self._origin is None:
            self._origin = (at_us, time.monotonic())
            return
        first_at, first_wall = self._origin
        delay = first_wall + (at_us - first_at) / 1e6 / self.speed - time.monotonic()
        if delay > 0:
            self.stop.wait(delay)
