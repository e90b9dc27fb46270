"""The drift monitor's Prometheus metrics (served with ``SEG_MONITOR_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.contracts.drift_alert import DriftAlert


class DriftMetrics:
    """Observations consumed, alerts by state, the latest statistic of each monitor, open incidents."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.observations = Counter(
            "seg_drift_observations",
            "Invoices and scored customers the workers reported, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "seg_drift_alerts",
            "Drift alerts published, by monitor and state",
            ["monitor", "state"],
            registry=self.registry,
        )
        self.statistic = Gauge(
            "seg_drift_statistic",
            "Value of a monitor's statistic at its latest alert, and the threshold it is compared with",
            ["monitor", "statistic", "kind"],
            registry=self.registry,
        )
        self.incidents_open = Gauge(
            "seg_drift_incidents_open",
            "1 while this monitor family is in alarm within the open drift incident (families share incidents)",
            ["monitor"],
            registry=self.registry,
        )

    def observed(self, invoices: int, assignments: int) -> None:
        self.observations.labels("invoice").inc(invoices)
        self.observations.labels("assignment").inc(assignments)

    def alerted(self, alerts: list[DriftAlert], open_by_monitor: dict[str, int]) -> None:
        """After a committed poll: its alerts, and which families are in alarm now (1) or not (0)."""
        for alert in alerts:
            self.alerts.labels(alert.monitor, alert.state).inc()
            self.statistic.labels(alert.monitor, alert.statistic, "value").set(alert.value)
            self.statistic.labels(alert.monitor, alert.statistic, "threshold").set(alert.threshold)
        for monitor, count in open_by_monitor.items():
            self.incidents_open.labels(monitor).set(count)
