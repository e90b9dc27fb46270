"""Drift incidents end to end (real data, real broker and Redis): worker → observations → monitor → alerts.

The stream is the reference period again, by new customers, after the bootstrap
cutoff (stationary by construction, :mod:`tests.drift_stream`). With a 1σ
order-value shift on stream days [60, 120) one incident opens soon after day 60
and closes after day 120; the same stream without the shift opens none.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis

from shared.contracts.drift_alert import DriftAlert
from shared.kafka_clients import read_to_end
from shared.settings import Settings
from shared.state_keys import Keys
from tests.drift_stream import Reference, Shift, publish, reference, stream
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.drift import DriftSettings
from worker.monitor.service import DriftMonitor
from worker.monitor.settings import MonitorSettings
from worker.monitor.store import MonitorStore
from worker.refresh.settings import RefreshSettings
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

CUTOFF = datetime(2011, 6, 1)
SHIFT = Shift(sigmas=1.0, onset=60, revert=120)
MAX_DELAY_INVOICES = 150


@pytest.fixture(scope="module")
def history(dataset: Path) -> Reference:
    return reference(dataset, CUTOFF)


def _alerts_of(settings: Settings, redis_client: redis.Redis, dataset: Path, history: Reference, tmp_path: Path,
               shift: Shift | None) -> list[DriftAlert]:  # fmt: skip
    keys = Keys(settings.redis.key_prefix)
    run_bootstrap(dataset, CUTOFF, redis_client, keys, BootstrapSettings(k=6, model_file=tmp_path / "model.json"))
    publish(settings, stream(history, CUTOFF, shift))
    Worker(settings, WorkerSettings(group_id=f"w-{keys.prefix}")).run(until_caught_up=True)
    monitor = DriftMonitor(settings, MonitorSettings(group_id=f"m-{keys.prefix}"), DriftSettings(), RefreshSettings())
    monitor.run(until_caught_up=True)
    published = {
        alert.alert_id: alert
        for alert in (
            DriftAlert.model_validate_json(r.value) for r in read_to_end(settings.kafka, settings.topics.drift_alerts)
        )
    }
    kept = MonitorStore(redis_client, keys, keep=1).recent(10_000)
    assert {alert.alert_id for alert in kept} == set(published), "Redis keeps every published alert"
    return sorted(published.values(), key=lambda alert: alert.window.end)


def _invoices_between(history: Reference, start: datetime, end: datetime) -> int:
    """Purchase invoices of the stream with event time in [start, end] (a shift changes prices, not invoices)."""
    seen = {
        (line.customer_id, line.invoice_no)
        for line in stream(history, CUTOFF)
        if start <= line.invoice_date <= end and line.customer_id and not line.is_cancellation
    }
    return len(seen)


def test_a_one_sigma_shift_opens_one_incident_that_closes_after_the_revert(
    settings: Settings, redis_client: redis.Redis, dataset: Path, history: Reference, tmp_path: Path
) -> None:
    alerts = _alerts_of(settings, redis_client, dataset, history, tmp_path, SHIFT)
    opened = [alert for alert in alerts if alert.state == "open"]
    assert len(opened) == 1, [(a.monitor, a.statistic, a.window.end) for a in opened]
    incident = opened[0]
    onset = CUTOFF + timedelta(days=SHIFT.onset)
    revert = CUTOFF + timedelta(days=SHIFT.revert)
    assert incident.monitor == "invoice_behaviour"
    assert onset <= incident.window.end
    delay = _invoices_between(history, onset, incident.window.end)
    assert delay <= MAX_DELAY_INVOICES, f"opened after {delay} invoices"
    closed = [alert for alert in alerts if alert.state == "closed" and alert.incident_id == incident.incident_id]
    assert len(closed) == 1 and closed[0].window.end >= revert
    assert MonitorStore(redis_client, Keys(settings.redis.key_prefix), keep=1).open_incidents() == []


def test_the_same_stream_without_a_shift_opens_no_incident(
    settings: Settings, redis_client: redis.Redis, dataset: Path, history: Reference, tmp_path: Path
) -> None:
    alerts = _alerts_of(settings, redis_client, dataset, history, tmp_path, None)
    opened = [
        (a.monitor, a.statistic, a.window.end, round(a.value, 3), round(a.threshold, 3))
        for a in alerts
        if a.state == "open"
    ]
    assert opened == [], "\n".join(map(str, opened))
