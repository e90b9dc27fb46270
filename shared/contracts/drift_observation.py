"""What a worker saw in one batch, for the drift monitor: on the internal drift-observations topic.

Why a topic: each worker sees only its partitions, but drift is a property of
the whole stream. Workers publish their share per batch (through the same
outbox as segment changes, so a crash neither loses nor invents one); one drift
monitor consumes every share in event-time order and keeps the incidents. A
re-sent share has an ``end_offset`` the monitor has already passed: it drops it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class InvoiceObservation(BaseModel):
    """One completed purchase invoice of a customer."""

    model_config = ConfigDict(frozen=True)

    event_time: datetime
    customer_id: str
    order_value: float = Field(description="sum of the invoice's product purchase lines (pounds)")
    lines: int = Field(ge=1, description="product purchase lines")
    days_since_previous: float | None = Field(description="since the customer's previous purchase; None if first")


class AssignmentObservation(BaseModel):
    """One customer scored after an event: segment before and after, distance to the new centroid, its vector.

    ``vector`` is the customer's scaled feature vector as of the event: the segment
    family places it on the fixed centroids of the model version it watches, which
    the moving live centroids cannot tell it. Observations from workers before it
    existed parse with None (the segment family skips them).
    """

    model_config = ConfigDict(frozen=True)

    event_time: datetime
    customer_id: str
    before: int | None
    after: int
    distance: float
    vector: list[float] | None = None


class DriftObservations(BaseModel):
    """JSON value, key = source partition. One per partition and batch with anything to report."""

    model_config = ConfigDict(extra="forbid")

    source_partition: int = Field(ge=0)
    end_offset: int = Field(ge=0, description="next offset of the source partition after this batch")
    partition_time: datetime = Field(description="latest event time the source partition has reached")
    model_version: int
    invoices: list[InvoiceObservation] = Field(default_factory=list)
    assignments: list[AssignmentObservation] = Field(default_factory=list)
