"""Customer archetypes: how often, how much and what each kind of customer buys.

The parameters are chosen so the archetypes differ in the features the model uses
(recency, frequency, order value, tenure, spend trend), which makes "does k-means
find them again?" a meaningful test. Activity windows are fractions of the
simulated period: a *new* customer starts late, a *churning* one stops early.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Archetype:
    """One kind of customer; all rates are per customer."""

    name: str
    share: float  # fraction of customers
    invoices_per_year: float  # Poisson rate while active (shaped by seasonality)
    lines_per_invoice: float  # mean basket size in distinct products
    quantity_scale: float  # multiplies the base quantity of every line
    price_affinity: float  # product weight ∝ price ** affinity (> 0 prefers dear items)
    categories: tuple[str, ...]  # favourite catalogue categories (weighted up)
    cancel_probability: float  # chance an invoice is later partly cancelled
    start: tuple[float, float]  # first activity, uniform in this range of the period
    end: tuple[float, float]  # last activity, uniform in this range of the period


ARCHETYPES: tuple[Archetype, ...] = (
    Archetype("champions", 0.06, 25.0, 14.0, 2.0, 0.0, ("decor", "kitchen", "lighting"), 0.08, (0.0, 0.05), (1.0, 1.0)),
    Archetype("loyal", 0.22, 10.0, 9.0, 1.0, 0.0, ("kitchen", "bags", "stationery"), 0.04, (0.0, 0.1), (1.0, 1.0)),
    Archetype("big spenders", 0.10, 4.0, 20.0, 8.0, 1.0, ("lighting", "decor", "garden"), 0.03, (0.0, 0.4), (1.0, 1.0)),
    Archetype(
        "occasional", 0.30, 1.5, 5.0, 0.6, -0.5, ("party", "stationery", "christmas"), 0.02, (0.0, 0.7), (1.0, 1.0)
    ),
    Archetype("new", 0.14, 24.0, 10.0, 1.0, 0.0, ("christmas", "party", "decor"), 0.02, (0.82, 0.92), (1.0, 1.0)),
    Archetype("churning", 0.18, 14.0, 12.0, 1.2, 0.0, ("garden", "kitchen", "bags"), 0.10, (0.0, 0.1), (0.25, 0.45)),
)
