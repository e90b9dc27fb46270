"""Synthetic Online Retail data with known answers: ``python -m producer simulate``.

Why: the real file has no ground truth. A simulated year whose customers are drawn
from known archetypes (and whose drift is injected at a known event time) lets
tests and demos check that segmentation recovers the archetypes and that the drift
monitors fire when, and only when, they should.
"""

from producer.simulate.archetypes import ARCHETYPES, Archetype
from producer.simulate.drift import DriftEpisode, parse_drift
from producer.simulate.simulation import SimulationConfig, SimulationResult, simulate

__all__ = [
    "ARCHETYPES",
    "Archetype",
    "DriftEpisode",
    "SimulationConfig",
    "SimulationResult",
    "parse_drift",
    "simulate",
]
