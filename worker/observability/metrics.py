"""The worker's Prometheus metrics, with the few typed calls the consume loop makes.

Each :class:`WorkerMetrics` owns a :class:`CollectorRegistry`, so several workers in
one process (tests, the demo) keep separate figures. Rates (events/s) are left to
Prometheus: counters only grow, ``rate(seg_worker_events_total[1m])`` is events/s.
Segment sizes are read when scraped, so the hot path pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# (segment id, segment name, "assigned" | "published") -> customers
SegmentSizes = Mapping[tuple[str, str, str], int]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _SegmentSizesCollector(Collector):
    """Calls ``read`` at each scrape and reports its counts as one gauge family."""

    def __init__(self, read: Callable[[], SegmentSizes]) -> None:
        self.read = read

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "seg_worker_segment_customers",
            "Customers of this worker's partitions per segment, by assigned (model) or published segment",
            labels=["segment", "name", "state"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for (segment, name, state), customers in sorted(self.read().items()):
            family.add_metric([segment, name, state], customers)
        yield family


class WorkerMetrics:
    """Metric objects of one worker; the loop reports through the methods below."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "seg_worker_events", "Invoice records consumed (rate() of it is events/s)", registry=self.registry
        )
        self.outcomes = Counter(
            "seg_worker_batch_outcomes",
            "What batches did with their records and customers, by the batch counter name",
            ["outcome"],
            registry=self.registry,
        )
        self.changes = Counter(
            "seg_worker_segment_changes", "Segment changes committed and published", registry=self.registry
        )
        self.batch_seconds = Histogram(
            "seg_worker_batch_seconds",
            "Wall time of one batch: decode, read, apply, commit, publish",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.sweep_seconds = Histogram(
            "seg_worker_sweep_seconds",
            "Wall time of one daily inactivity sweep (re-score and Lloyd passes)",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "seg_worker_consumer_lag",
            "Records of an owned partition not applied yet (broker high watermark minus applied offset)",
            ["partition"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "seg_worker_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=self.registry
        )

    def batch_done(
        self, records: int, seconds: float, counters: Mapping[str, int], changes: int, sweep_seconds: Iterable[float]
    ) -> None:
        """After a batch is committed and its changes published; ``sweep_seconds``: its sweeps' durations."""
        self.events.inc(records)
        self.batch_seconds.observe(seconds)
        self.changes.inc(changes)
        for outcome, n in counters.items():
            self.outcomes.labels(outcome).inc(n)
        for duration in sweep_seconds:
            self.sweep_seconds.observe(duration)

    def lag(self, partition: int, records: int) -> None:
        self.consumer_lag.labels(str(partition)).set(records)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """On revocation: another worker reports these partitions now."""
        for partition in partitions:
            self.consumer_lag.remove(str(partition))

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason).inc()

    def watch_segments(self, read: Callable[[], SegmentSizes]) -> None:
        """Report ``read()`` as the segment sizes at every scrape."""
        self.registry.register(_SegmentSizesCollector(read))
