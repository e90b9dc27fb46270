"""What one monitor evaluation produces: the raw material of an alert."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.contracts.drift_alert import Contribution, EventWindow

# How many contributions an alert carries, largest shift first.
TOP_CONTRIBUTIONS = 5


@dataclass(frozen=True)
class Check:
    """One statistic of a monitor against its calibrated threshold."""

    method: str
    statistic: str
    value: float
    threshold: float
    threshold_source: str

    @property
    def ratio(self) -> float:
        """value / threshold: above 1 is an exceedance; incidents close below ``close_ratio``."""
        return self.value / self.threshold if self.threshold > 0 else 0.0


@dataclass(frozen=True)
class Evaluation:
    """A monitor's verdict on one window: its worst check, what moved, and the window."""

    monitor: str
    worst: Check
    window: EventWindow
    contributions: list[Contribution] = field(default_factory=list)
    segment_shares_reference: dict[str, float] = field(default_factory=dict)
    segment_shares_now: dict[str, float] = field(default_factory=dict)


def worst_check(checks: list[Check]) -> Check | None:
    """The check closest to (or furthest past) its threshold."""
    return max(checks, key=lambda check: check.ratio, default=None)


def top_contributions(contributions: list[Contribution]) -> list[Contribution]:
    """Largest absolute shifts first, rounded for the wire."""
    ranked = sorted(contributions, key=lambda item: abs(item.shift), reverse=True)[:TOP_CONTRIBUTIONS]
    return [Contribution(name=item.name, shift=round(item.shift, 4)) for item in ranked]
