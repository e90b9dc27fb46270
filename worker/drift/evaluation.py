"""What one monitor evaluation produces: the raw material of an alert, and the effect sizes that rank what moved.

Contributions of every family are ranked by one kind of effect size, so the first
one named is the one that moved most whatever its unit: Cohen's d (difference of
means in reference standard deviations) for values, Cohen's h (difference of
arcsine-square-root proportions) for shares. Both read alike: 0.2 small, 0.5
medium, 0.8 large.

>>> round(cohens_h(0.5, 0.25), 3)
0.524
>>> cohens_d(12.0, 10.0, 4.0)
0.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shared.contracts.drift_alert import Contribution, EventWindow

# How many contributions an alert carries, largest effect first.
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
    """A monitor's verdict on one window: its worst check, what moved (ranked), and the window."""

    monitor: str
    worst: Check
    window: EventWindow
    contributions: list[Contribution] = field(default_factory=list)


def cohens_d(current: float, reference: float, sd: float) -> float:
    """Difference of means in reference standard deviations."""
    return round((current - reference) / sd, 4) if sd > 0 else 0.0


def cohens_h(current: float, reference: float) -> float:
    """Difference of two proportions on the arcsine-square-root scale."""
    clip = lambda p: min(max(p, 0.0), 1.0)  # noqa: E731
    return round(2.0 * math.asin(math.sqrt(clip(current))) - 2.0 * math.asin(math.sqrt(clip(reference))), 4)


def ranked(contributions: list[Contribution]) -> list[Contribution]:
    """Largest absolute effect size first, at most :data:`TOP_CONTRIBUTIONS`."""
    return sorted(contributions, key=lambda item: abs(item.shift), reverse=True)[:TOP_CONTRIBUTIONS]
