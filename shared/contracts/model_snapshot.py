"""The model snapshot: everything needed to score a customer, as JSON (never pickle)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Transform(BaseModel):
    """Per-feature transform: optional signed log1p, then robust scaling."""

    log_features: list[str] = Field(description="features passed through sign(x)·log1p(|x|) first")
    center: list[float]
    scale: list[float]


class Segment(BaseModel):
    """One cluster: stable id, name, centroid (scaled units) and its running statistics.

    ``name`` is a short label unique within the model and ``description`` one line with
    the numbers behind it (:mod:`worker.segmentation.naming`); snapshots written before
    descriptions existed parse with an empty one.
    """

    id: int
    name: str
    description: str = Field("", description="what sets the segment apart, with its median numbers")
    centroid: list[float]
    sum: list[float] = Field(description="sum of member vectors (scaled units)")
    count: int
    profile: dict[str, float] = Field(default_factory=dict, description="median raw features of members")


class QuantileBins(BaseModel):
    """Reference distribution of one statistic, as bin edges and shares."""

    edges: list[float]
    shares: list[float]


class ReferenceStats(BaseModel):
    """What drift monitors compare against, taken from the training window."""

    feature_bins: dict[str, QuantileBins] = Field(default_factory=dict)
    segment_shares: dict[str, float] = Field(default_factory=dict)
    distance_bins: QuantileBins | None = None
    invoice_stats: dict[str, QuantileBins] = Field(default_factory=dict)
    extra: dict[str, float] = Field(default_factory=dict)


class ModelSnapshot(BaseModel):
    """A versioned, immutable model. Written to Redis (versioned key) and to a file."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    created_at: datetime
    feature_names: list[str]
    transform: Transform
    segments: list[Segment]
    k: int
    training_window: tuple[datetime | None, datetime]
    data_fingerprint: str
    quality: dict[str, float] = Field(default_factory=dict)
    k_selection: dict[str, dict[str, float]] = Field(default_factory=dict, description="scores per k tried")
    retired_segment_ids: list[int] = Field(default_factory=list)
    next_segment_id: int
    reference: ReferenceStats = ReferenceStats()
    customers: int
