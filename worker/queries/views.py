"""What a reader gets back: pydantic views of customers, segments, models, incidents and stream progress.

They are the API's response schemas (its OpenAPI document is generated from them)
and the CLI's ``--json`` output, so both say the same thing in the same words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, WithJsonSchema

from shared.contracts.segment_change import ChangeReason, SegmentChange

EventTime = Annotated[
    datetime,
    WithJsonSchema({"type": "string", "description": "ISO 8601 event time as in the source data, without a time zone"}),
]
"""Event times carry no zone (the data's invoice times have none), so they are no RFC 3339 date-time."""

FEATURE_UNITS: dict[str, str] = {
    "recency_days": "days",
    "frequency": "invoices",
    "monetary": "GBP",
    "avg_order_value": "GBP per invoice",
    "distinct_products": "stock codes",
    "lines_per_invoice": "lines per invoice",
    "mean_days_between_purchases": "days",
    "tenure_days": "days",
    "cancellation_rate": "share of invoices (0 to 1)",
    "monthly_spend_mean": "GBP per month",
    "monthly_spend_std": "GBP per month",
    "monthly_spend_trend": "GBP per month, per month",
}
"""The unit of each feature's raw value (profiles and customer features are in these)."""


class SegmentLabel(BaseModel):
    """A segment of the live model as a person reads it."""

    id: int
    name: str = Field(description="short label, unique within the model")
    description: str = Field("", description="what sets the segment apart, with its median numbers")


class Recommendation(BaseModel):
    """A product the customer's published segment bought, which the customer never had."""

    stock_code: str
    units: int = Field(description="net units the segment's customers bought (returns subtract)")


class LastChange(BaseModel):
    """The customer's last segment change on the segment-changes topic."""

    sequence: int
    reason: ChangeReason
    event_time: EventTime
    previous: SegmentLabel | None
    current: SegmentLabel
    model_version: int

    @classmethod
    def of(cls, change: SegmentChange) -> LastChange:
        """The change as published (segment names as they were then)."""
        previous = change.previous
        return cls(
            sequence=change.sequence,
            reason=change.reason,
            event_time=change.event_time,
            previous=None if previous is None else SegmentLabel(id=previous.id, name=previous.name),
            current=SegmentLabel(id=change.current.id, name=change.current.name),
            model_version=change.model_version,
        )


class CustomerSummary(BaseModel):
    """The aggregates a person asks about first."""

    country: str
    invoices: int
    cancelled_invoices: int
    purchase_lines: int
    units: int
    distinct_products: int
    gross_spend: float = Field(description="GBP")
    cancelled_amount: float = Field(description="GBP")
    net_spend: float = Field(description="GBP")
    first_purchase: EventTime | None
    last_purchase: EventTime | None


class CustomerView(BaseModel):
    """One customer: the segment consumers see, its features as of when, its last change, what to offer."""

    customer_id: str
    model_version: int | None = Field(description="the live model the segment names come from")
    published: SegmentLabel | None = Field(description="the segment consumers see; None until the first change")
    assigned: SegmentLabel | None = Field(
        description="nearest centroid now; differs from published while the debounce holds a switch back"
    )
    features: dict[str, float] | None = Field(description="raw feature values, in FEATURE_UNITS")
    features_as_of: EventTime | None = Field(description="event time the features were computed at")
    sequence: int = Field(description="sequence number of the last published change (0: none yet)")
    published_at: EventTime | None = Field(description="event time of the last published change")
    last_change: LastChange | None = Field(
        None, description="the last change on the topic; None before the first, or before the reader has reached it"
    )
    aggregates: CustomerSummary
    recommendations: list[Recommendation]


class ProductUnits(BaseModel):
    stock_code: str
    units: int = Field(description="net units bought by the customers whose published segment this is")


class SegmentView(BaseModel):
    """One segment now: live size, training-time profile, top products."""

    id: int
    name: str
    description: str
    size: int = Field(description="live members (nearest centroid), summed over every partition's statistics")
    share: float = Field(description="size over all scored customers")
    profile: dict[str, float] = Field(description="median raw features of the members at training time")
    top_products: list[ProductUnits]


class SegmentsView(BaseModel):
    """Every segment of the live model."""

    model_version: int
    customers: int = Field(description="scored customers, the sum of the sizes")
    feature_units: dict[str, str] = Field(description="unit of each profile feature")
    segments: list[SegmentView]


class ModelSegment(BaseModel):
    id: int
    name: str
    description: str
    size_at_fit: int


class Lineage(BaseModel):
    """Where a model version comes from."""

    source: Literal["bootstrap", "refresh"]
    parent_version: int | None = Field(description="the version a refresh refitted; None for a bootstrap")
    data_fingerprint: str = Field(description="sha256 of the bootstrap history")
    kept_segment_ids: list[int] = Field(description="ids also in the parent (matched centroids)")
    new_segment_ids: list[int] = Field(description="ids first given in this version")
    retired_segment_ids: list[int] = Field(description="ids never to be used again, up to this version")


class ModelView(BaseModel):
    """One stored model version."""

    version: int
    current: bool = Field(description="model:current points at it")
    created_at: datetime
    k: int
    training_start: EventTime | None
    training_end: EventTime
    customers: int
    metrics: dict[str, float] = Field(description="fit quality: silhouette, Calinski-Harabasz, Davies-Bouldin, inertia")
    k_selection: dict[str, dict[str, float]] = Field(description="the scores of every k tried")
    lineage: Lineage
    segments: list[ModelSegment]


class StatisticPoint(BaseModel):
    """One alert's statistic against its threshold."""

    at: EventTime = Field(description="end of the event window the statistic was computed over")
    monitor: str
    statistic: str
    value: float
    threshold: float
    state: Literal["open", "update", "closed"]
    severity: Literal["info", "warning", "critical"]


class FamilyView(BaseModel):
    """A monitor family that is (or was) in alarm within the incident."""

    monitor: str
    method: str
    statistic: str
    joined: EventTime
    active: bool = Field(description="still above its closing level")
    value: float | None = Field(description="its statistic at its latest alert held (None: none kept)")
    threshold: float | None


class IncidentView(BaseModel):
    """A drift incident, folded from the alerts Redis keeps."""

    incident_id: str
    state: Literal["open", "closed"]
    severity: Literal["info", "warning", "critical"] = Field(description="at the latest alert")
    opened_at: EventTime = Field(description="first opening among the alerts kept")
    updated_at: EventTime
    closed_at: EventTime | None
    model_version: int
    families: list[FamilyView]
    history: list[StatisticPoint] = Field(description="the statistics of the incident's alerts kept, oldest first")
    suggested_action: str
    alerts: int = Field(description="alerts of this incident among those kept")


class PartitionProgress(BaseModel):
    partition: int
    applied_offset: int | None = Field(description="next offset the workers will apply (Redis)")
    end_offset: int | None = Field(description="the broker's end offset (None when the broker did not answer)")
    lag: int | None = Field(description="end minus applied")


class ProgressView(BaseModel):
    """How far the workers are: per-partition lag against the broker, rows applied per second."""

    topic: str
    event_time: EventTime | None = Field(description="latest event time the workers have reached")
    applied: int = Field(description="records applied over all partitions (sum of the stored offsets)")
    lag: int | None
    rows_per_s: float | None = Field(description="records applied per second over the last sampling window")
    partitions: list[PartitionProgress]


class Flow(BaseModel):
    source: int | None = Field(description="previous segment; None for a customer's first")
    target: int
    changes: int


class SegmentHistory(BaseModel):
    """Published segment sizes week by week and the flow of changes between segments."""

    model_version: int
    names: dict[int, str]
    times: list[EventTime] = Field(description="event times of the samples, a week apart")
    sizes: dict[int, list[int]] = Field(description="published members per segment at each time")
    flows: list[Flow] = Field(description="changes from each previous to each current segment in the window")
    changes: int = Field(description="distinct changes the window holds")
