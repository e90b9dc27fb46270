"""A drift incident update: published on the drift-alerts topic."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EventWindow(BaseModel):
    """The event-time window a statistic was computed over."""

    start: datetime
    end: datetime
    events: int
    customers: int


class Contribution(BaseModel):
    """One feature or transition that moved, and by how much."""

    name: str
    shift: float


class DriftAlert(BaseModel):
    """JSON value, key = monitor. ``state`` walks open → update* → closed per incident."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str
    incident_id: str
    state: Literal["open", "update", "closed"]
    severity: Literal["info", "warning", "critical"]
    monitor: str
    method: str
    statistic: str
    value: float
    threshold: float
    threshold_source: str = Field(description="how the threshold was calibrated")
    window: EventWindow
    reference_period: tuple[datetime, datetime]
    model_version: int
    contributions: list[Contribution] = Field(default_factory=list)
    segment_shares_reference: dict[str, float] = Field(default_factory=dict)
    segment_shares_now: dict[str, float] = Field(default_factory=dict)
    suggested_action: str = ""
