"""Drift monitor service options (``SEG_MONITOR_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from shared.settings import section_config


class MonitorSettings(BaseSettings):
    """Consumer group, how many recent alerts Redis keeps, where metrics are served."""

    model_config = section_config("monitor")

    group_id: str = Field("drift-monitor", min_length=1)
    poll_timeout_ms: int = Field(500, ge=10)
    recent_alerts: int = Field(500, ge=1, description="alerts kept in Redis (drift:alerts) for dashboards and the CLI")
    metrics_port: int = Field(0, ge=0, le=65535, description="serve /metrics, /healthz, /readyz here; 0 = off")
    metrics_host: str = Field(
        "127.0.0.1", min_length=1, description="address the metrics port listens on (0.0.0.0 in a container)"
    )
