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
    """One feature that moved: its value in the reference and now, in its own unit, and the effect size.

    ``shift`` is a comparable effect size (Cohen's d for values, Cohen's h for shares),
    by which an alert ranks its contributions. Alerts written before ``unit``,
    ``reference`` and ``current`` existed parse with them empty.
    """

    name: str
    shift: float = Field(description="effect size: Cohen's d (values) or h (shares); sign = direction")
    unit: str = ""
    reference: float | None = Field(None, description="the feature in the reference window, in ``unit``")
    current: float | None = Field(None, description="the feature in the alert's window, in ``unit``")


class Contributor(BaseModel):
    """A monitor family that is (or was) in alarm within an incident, and the statistic it opened on."""

    monitor: str
    method: str
    statistic: str
    joined: datetime = Field(description="end of the event window in which this family joined (or re-joined)")
    active: bool = Field(True, description="false once this family is back below its closing level")


class DriftAlert(BaseModel):
    """JSON value, key = incident id. ``state`` walks open → update* → closed per incident.

    One incident may hold several monitor families (``contributors``): a family that
    opens while another's incident is open joins it with an ``update``. A closed
    incident may re-open (``open`` again, same ``incident_id``) when drift comes back
    within the monitor's ``reopen_window_days``. Count incidents by ``incident_id``.
    ``monitor``, ``statistic`` and ``value`` are those of the family that sent this alert.
    Alerts written before ``contributors`` existed parse with an empty list.
    """

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
    contributors: list[Contributor] = Field(default_factory=list)
    suggested_action: str = ""

    def raises(self) -> bool:
        """Whether the sending family went into alarm with this alert: it opened, re-opened or joined the incident.

        What a consumer pages on when every family matters (a join is an ``update``).
        """
        joined = any(c.monitor == self.monitor and c.joined == self.window.end for c in self.contributors)
        return self.state == "open" or (self.state == "update" and joined)
