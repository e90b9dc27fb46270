"""What the report shows, as plain data: gathered once, then rendered without touching Kafka or Redis.

Keeping the numbers apart from the drawing lets tests check them against the
topics and Redis directly, and lets the page be rendered from constructed data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

NEW = None
"""Row key of the transition matrix for a customer's first segment (no previous one)."""


@dataclass(frozen=True)
class SegmentProfile:
    """One segment of the live model: its live member count and training-time median profile."""

    id: int
    name: str
    size: int
    profile: dict[str, float]
    description: str = ""


@dataclass(frozen=True)
class SizeHistory:
    """Published members per segment at regular event times (the state after all earlier changes)."""

    times: list[datetime]
    sizes: dict[int, list[int]]

    def at_end(self) -> dict[int, int]:
        """Members per segment after the last change."""
        return {segment: counts[-1] for segment, counts in self.sizes.items() if counts}


@dataclass(frozen=True)
class Transitions:
    """How many published changes went from each previous segment (or :data:`NEW`) to each current one."""

    counts: dict[tuple[int | None, int], int]

    @property
    def sources(self) -> list[int | None]:
        """Row keys: :data:`NEW` first, then segment ids ascending."""
        found = {source for source, _ in self.counts}
        return ([NEW] if NEW in found else []) + sorted(s for s in found if s is not None)

    @property
    def targets(self) -> list[int]:
        return sorted({target for _, target in self.counts})


@dataclass(frozen=True)
class Incident:
    """One drift incident, folded from its open/update/closed alerts."""

    incident_id: str
    monitor: str
    severity: str
    statistic: str
    opened: datetime
    last_seen: datetime
    closed: datetime | None
    alerts: int
    suggested_action: str

    @property
    def end(self) -> datetime:
        """Where the incident's bar ends: its closing, or the last alert while still open."""
        return self.closed or self.last_seen


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
