"""Where the metrics endpoints listen: this machine only, unless the operator opens them."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from shared.exceptions import ConfigError, ServiceUnavailableError
from shared.settings import load
from worker.drift_service.settings import MonitorSettings
from worker.observability.health import Health
from worker.observability.server import ObservabilityServer
from worker.stream.settings import WorkerSettings


@pytest.fixture(autouse=True)
def no_seg_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEG_"):
            monkeypatch.delenv(name)


def test_the_default_is_the_loopback_address_and_it_answers() -> None:
    server = ObservabilityServer(0, CollectorRegistry(), Health(60.0))
    try:
        assert server._server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as response:
            assert json.loads(response.read())["live"] is True
    finally:
        server.close()


def test_an_open_address_listens_on_every_interface() -> None:
    server = ObservabilityServer(0, CollectorRegistry(), Health(60.0), host="0.0.0.0")
    try:
        assert server._server.server_address[0] == "0.0.0.0"
    finally:
        server.close()


def test_an_address_this_machine_does_not_have_says_which_variables_to_change() -> None:
    with pytest.raises(ServiceUnavailableError, match="SEG_WORKER_METRICS_PORT and _HOST"):
        ObservabilityServer(0, CollectorRegistry(), Health(60.0), host="192.0.2.1")  # TEST-NET-1: never local


@pytest.mark.parametrize(("settings", "prefix"), [(WorkerSettings, "SEG_WORKER_"), (MonitorSettings, "SEG_MONITOR_")])
def test_the_worker_and_the_monitor_read_their_address_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings: type[WorkerSettings] | type[MonitorSettings], prefix: str
) -> None:
    assert load(settings).metrics_host == "127.0.0.1"
    monkeypatch.setenv(f"{prefix}METRICS_HOST", "0.0.0.0")
    assert load(settings).metrics_host == "0.0.0.0"
    monkeypatch.setenv(f"{prefix}METRICS_HOST", "")
    with pytest.raises(ConfigError, match=f"{prefix}METRICS_HOST"):
        load(settings)
