"""What the report shows, as plain data: gathered once, then rendered without touching Kafka or Redis.

Keeping the numbers apart from the drawing lets tests check them against the
topics and Redis directly, and lets the page be rendered from constructed data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from worker.queries.history import Incident, SizeHistory, Transitions


@dataclass(frozen=True)
class SegmentProfile:
    """One segment of the live model: its live member count and training-time median profile."""

    id: int
    name: str
    size: int
    profile: dict[str, float]
    description: str = ""


@dataclass(frozen=True)
class ReportData:
    """Everything on the page."""

    generated_at: datetime
    model_version: int
    trained_until: datetime
    segments: list[SegmentProfile]
    names: dict[int, str]
    changes: int
    sizes: SizeHistory
    transitions: Transitions
    incidents: list[Incident]
    products: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    def name(self, segment: int | None) -> str:
        """A segment's label, ``new`` for :data:`NEW`."""
        return "new" if segment is None else f"{segment} {self.names.get(segment, '?')}"
