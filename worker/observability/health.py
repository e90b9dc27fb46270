"""Liveness and readiness of one worker, as the HTTP endpoints report them.

* live (``/healthz``): the loop polled within ``liveness_timeout_s``. A worker stuck
  in a batch or waiting on Redis for longer stops being live, so an orchestrator
  restarts it; its partitions move to the other workers.
* ready (``/readyz``): the worker owns partitions and has loaded their customers.
  A worker without partitions (during a rebalance, or more workers than
  partitions) is alive but not ready.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


class Health:
    """Updated by the loop; read by the HTTP thread."""

    def __init__(self, liveness_timeout_s: float) -> None:
        self.liveness_timeout_s = liveness_timeout_s
        # Construction counts as progress: the first poll also joins the group.
        self.last_poll = time.monotonic()
        self.partitions: frozenset[int] = frozenset()

    def polled(self) -> None:
        self.last_poll = time.monotonic()

    def assigned(self, partitions: Iterable[int]) -> None:
        """After the customers of ``partitions`` are loaded."""
        self.partitions = self.partitions | frozenset(partitions)

    def revoked(self, partitions: Iterable[int]) -> None:
        self.partitions = self.partitions - frozenset(partitions)

    def live(self) -> bool:
        return time.monotonic() - self.last_poll <= self.liveness_timeout_s

    def ready(self) -> bool:
        return bool(self.partitions)

    def status(self) -> dict[str, Any]:
        """The JSON body of both endpoints."""
        return {
            "live": self.live(),
            "ready": self.ready(),
            "seconds_since_poll": round(time.monotonic() - self.last_poll, 3),
            "partitions": sorted(self.partitions),
        }
