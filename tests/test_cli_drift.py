"""The drift and refresh commands, and the refresh policy, against a real broker and Redis.

``python -m worker monitor``, ``refresh`` and ``alerts --recent/--open`` read their
settings from the environment, as deployed; the tests set it from the fixture.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from producer.simulate.drift import DriftEpisode
from producer.simulate.simulation import SimulationConfig, simulate
from shared.contracts.drift_alert import Contributor, DriftAlert
from shared.kafka_clients import read_to_end
from shared.settings import Settings, as_environment
from shared.state.keys import Keys
from tests.pipeline import SIM_DAYS as DAYS
from tests.tools_helpers import CUTOFF, alert, bootstrap_simulated, replay_simulated, run_tool, stream_simulated
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.cli import main
from worker.drift import DriftSettings
from worker.drift_service.service import DriftMonitor
from worker.drift_service.settings import MonitorSettings
from worker.drift_service.store import MonitorStore
from worker.refresh.settings import RefreshSettings
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings


def _main(argv: list[str], settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    for name, value in as_environment(settings).items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def test_alerts_recent_and_open_read_what_the_monitor_keeps(settings: Settings, redis_client: redis.Redis) -> None:
    store = MonitorStore(redis_client, Keys(settings.redis.key_prefix), keep=10)
    first, update = alert("a1", "invoice_behaviour"), alert("a2", "invoice_behaviour", "update")
    other = alert("b1", "segment_structure").model_copy(update={"incident_id": "inc-seg"})
    closed = other.model_copy(update={"alert_id": "b2", "state": "closed"})
    store.commit(-1, 1, {}, [first, update, other])
    store.commit(1, 2, {}, [closed])
    code, out = run_tool(settings, ["alerts", "--recent", "2", "--json"])
    assert code == 0 and [json.loads(line)["alert_id"] for line in out.splitlines()] == ["b2", "b1"]
    code, out = run_tool(settings, ["alerts", "--open", "--json"])
    assert [json.loads(line)["alert_id"] for line in out.splitlines()] == ["a2"]
    code, out = run_tool(settings, ["alerts", "--recent", "10", "--monitor", "segment_structure"])
    assert out.splitlines()[0].startswith("window end") and len(out.splitlines()) == 3


def test_alerts_of_an_incident_of_two_families_are_listed_under_either(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = MonitorStore(redis_client, Keys(settings.redis.key_prefix), keep=10)
    invoice = Contributor(monitor="invoice_behaviour", method="psi", statistic="x", joined=CUTOFF)
    activity = Contributor(monitor="customer_activity", method="z-score", statistic="y", joined=CUTOFF)
    joined = alert("j1", "customer_activity", "update").model_copy(
        update={"incident_id": "v1-incident-1", "contributors": [invoice, activity]}
    )
    store.commit(-1, 1, {}, [alert("o1", "invoice_behaviour").model_copy(update={"incident_id": "v1-incident-1"})])
    store.commit(1, 2, {}, [joined])
    for monitor in ("invoice_behaviour", "customer_activity"):
        code, out = run_tool(settings, ["alerts", "--open", "--monitor", monitor])
        header, row = out.splitlines()
        assert "families in alarm" in header and "invoice_behaviour+customer_activity" in row
    code, out = run_tool(settings, ["alerts", "--open", "--monitor", "segment_structure"])
    assert code == 0 and len(out.splitlines()) == 1


def test_monitor_and_refresh_commands(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = Keys(settings.redis.key_prefix)
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=30)
    stream_simulated(settings, tmp_path)
    code, out = _main(["monitor", "--until-caught-up"], settings, monkeypatch)
    summary = json.loads(out.splitlines()[-1])
    assert code == 0 and summary["refreshes"] == 0
    offset = int(redis_client.hget(keys.drift_state, "offset"))
    assert offset > 0, "the monitor consumed the workers' observations and stored its offset"
    # An incident the live engine does not hold (left open by an engine since replaced, or by a
    # monitor from before incidents were closed on a switch) is closed when the monitor starts.
    store = MonitorStore(redis_client, keys, keep=1_000)
    held = {incident.incident_id for incident in store.open_incidents()}
    stale = alert("stale", "invoice_behaviour").model_copy(update={"incident_id": "v1-invoice_behaviour-7"})
    store.commit(offset, offset, store.load()[1] or {}, [stale])
    code, out = _main(["monitor", "--until-caught-up"], settings, monkeypatch)
    assert code == 0 and {incident.incident_id for incident in store.open_incidents()} == held
    (closed,) = [a for a in store.recent(1_000) if a.incident_id == stale.incident_id and a.state == "closed"]
    assert "model v1" in closed.suggested_action
    topic = read_to_end(settings.kafka, settings.topics.drift_alerts)
    assert closed.alert_id in {DriftAlert.model_validate_json(record.value).alert_id for record in topic}
    code, out = _main(["refresh"], settings, monkeypatch)
    assert code == 0 and "model v1 -> v2" in out
    assert redis_client.get(keys.model_current) == "2"
    code, _ = _main(["refresh", "--as-of", "2099-01-01"], settings, monkeypatch)
    assert code == 0 and redis_client.get(keys.model_current) == "3"


def test_policy_refresh_refits_when_an_incident_opens(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    keys = Keys(settings.redis.key_prefix)
    shift = DriftEpisode("order-value-shift", CUTOFF + timedelta(days=10), 2.0)
    sim = simulate(SimulationConfig(out=tmp_path / "sim.csv", customers=1_000, days=DAYS + 40, seed=3, drift=(shift,)))
    run_bootstrap(
        sim.path, CUTOFF, redis_client, keys, BootstrapSettings(k=4, model_file=tmp_path / "model.json"), partitions=3
    )
    replay_simulated(settings, tmp_path, CUTOFF)
    Worker(settings, WorkerSettings(group_id=f"w-{keys.prefix}")).run(until_caught_up=True)
    monitor = DriftMonitor(
        settings, MonitorSettings(group_id=f"m-{keys.prefix}"), DriftSettings(), RefreshSettings(policy="refresh")
    )
    monitor.run(until_caught_up=True)
    opened = [alert for alert in MonitorStore(redis_client, keys, keep=1).recent(1_000) if alert.state == "open"]
    assert opened and monitor.refreshes >= 1
    assert int(redis_client.get(keys.model_current)) == 1 + monitor.refreshes
    assert monitor.engine.context.model_version == 1 + monitor.refreshes
    # The incident that triggered a refresh belongs to the replaced engine: closed, so --open is true.
    store = MonitorStore(redis_client, keys, keep=1)
    assert {a.incident_id for a in store.open_incidents()} <= {monitor.engine.open_incident_id}
    superseded = [a for a in store.recent(1_000) if a.state == "closed" and "-closed-superseded-" in a.alert_id]
    assert {a.incident_id for a in superseded} >= {opened[-1].incident_id}
