"""What the consume loop reports, in one object: metrics, health and their HTTP server.

The loop calls :meth:`Observer.polled` at every poll, :meth:`assigned` and
:meth:`revoked` on rebalances, :meth:`dead_letter` for each unusable record and
``observer.metrics.batch_done`` after each committed batch. Drift metrics are
the drift monitor's (:mod:`worker.drift_service.metrics`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping

import numpy as np

from shared.exceptions import RecordError
from worker.observability.health import Health
from worker.observability.metrics import WorkerMetrics
from worker.observability.segments import segment_sizes
from worker.observability.server import ObservabilityServer

log = logging.getLogger("worker")


class Observer:
    """Metrics and health of one worker; serves them when ``metrics_port`` is set."""

    def __init__(
        self,
        metrics_port: int,
        metrics_host: str,
        liveness_timeout_s: float,
        segments: Callable[[], tuple[Mapping[int, str], np.ndarray, np.ndarray]],
    ) -> None:
        """``segments`` returns the model's names and every owned customer's assigned and published segment ids."""
        self.metrics = WorkerMetrics()
        self.metrics.watch_segments(lambda: segment_sizes(*segments()))
        self.health = Health(liveness_timeout_s)
        self.server = (
            ObservabilityServer(metrics_port, self.metrics.registry, self.health, metrics_host)
            if metrics_port
            else None
        )

    def polled(self, highwater: Mapping[int, int], applied: Mapping[int, int]) -> None:
        """After each poll: the loop is alive, and the lag of every owned partition.

        The lag comes from the high watermarks the fetches brought back (no extra
        request); a partition not fetched from yet keeps its last value.
        """
        self.health.polled()
        for partition, offset in applied.items():
            if partition in highwater:
                self.metrics.lag(partition, max(highwater[partition] - max(offset, 0), 0))

    def assigned(self, partitions: Collection[int]) -> None:
        """After the customers of ``partitions`` are loaded."""
        self.health.assigned(partitions)

    def revoked(self, partitions: Collection[int]) -> None:
        self.health.revoked(partitions)
        self.metrics.forget_partitions(partitions)

    def dead_letter(self, partition: int, offset: int, error: RecordError) -> None:
        """A record goes to the dead-letter topic: count it by reason, log where it was."""
        self.metrics.dead_letter(error.kind)
        log.warning(
            "dead letter (%s) from partition %d offset %d: %s",
            error.kind,
            partition,
            offset,
            error,
            extra={"partition": partition, "offset": offset, "reason": error.kind},
        )

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
