"""Drift episodes: a change of behaviour injected at an event time.

Spelled ``KIND:DATE:MAGNITUDE`` on the command line:

* ``order-value-shift:2011-09-01:1.0``: from that time on, every product line's unit
  price is multiplied by ``exp(1.0 · σ)``, where σ is the standard deviation of log
  invoice value (customers' purchases) before that time, so log order value moves
  by +1σ while baskets and products stay the same.
* ``churn:2011-09-01:0.3``: 30% of the *loyal* customers (chosen at random) buy
  nothing from that time on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

DriftKind = Literal["order-value-shift", "churn"]
KINDS: tuple[DriftKind, ...] = ("order-value-shift", "churn")


@dataclass(frozen=True)
class DriftEpisode:
    """One injected change: what, from when, how strong."""

    kind: DriftKind
    at: datetime
    magnitude: float


def parse_drift(text: str) -> DriftEpisode:
    """``KIND:DATE:MAGNITUDE`` to an episode; ValueError says what is wrong."""
    kind, _, rest = text.partition(":")
    when, _, magnitude = rest.rpartition(":")
    if kind not in KINDS:
        raise ValueError(f"drift kind {kind!r} is not one of {', '.join(KINDS)}")
    try:
        at = datetime.fromisoformat(when)
        value = float(magnitude)
    except ValueError:
        raise ValueError(f"{text!r} is not KIND:DATE:MAGNITUDE (e.g. churn:2011-09-01:0.3)") from None
    if kind == "churn" and not 0 < value <= 1:
        raise ValueError(f"churn magnitude is a fraction of loyal customers in (0, 1], not {value}")
    return DriftEpisode(kind, at, value)
