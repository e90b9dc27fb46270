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

from producer.simulate import SimulationConfig, simulate
from producer.simulate.drift import DriftEpisode
from shared.settings import Settings, as_environment
from shared.state_keys import Keys
from tests.tools_helpers import CUTOFF, DAYS, alert, bootstrap_simulated, replay_simulated, run_tool, stream_simulated
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.cli import main
from worker.drift import DriftSettings
from worker.monitor.service import DriftMonitor
from worker.monitor.settings import MonitorSettings
from worker.monitor.store import MonitorStore
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
    run_bootstrap(sim.path, CUTOFF, redis_client, keys, BootstrapSettings(k=4, model_file=tmp_path / "model.json"))
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
