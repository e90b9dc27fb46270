"""A customer moved between segments: published on the segment-changes topic."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ChangeReason = Literal["first_purchase", "purchase", "cancellation", "inactivity", "model_refresh"]


class SegmentRef(BaseModel):
    """A segment as consumers see it: a stable id and a human name."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str


class SegmentChange(BaseModel):
    """JSON value, key = customer id. ``sequence`` grows per customer: drop repeats."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str
    previous: SegmentRef | None = Field(description="None for a customer's first segment")
    current: SegmentRef
    model_version: int
    event_time: datetime = Field(description="event time of the cause")
    reason: ChangeReason
    features: dict[str, float]
    distance_margin: float = Field(description="distance to the old centroid minus to the new one (scaled units)")
    sequence: int = Field(ge=1, description="per-customer sequence number")
    recommendations: list[str] = Field(default_factory=list)
