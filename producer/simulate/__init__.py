"""Synthetic Online Retail data with known answers: ``python -m producer simulate``.

Why: the real file has no ground truth. A simulated year whose customers are drawn
from known archetypes (and whose drift is injected at a known event time) lets
tests and demos check that segmentation recovers the archetypes and that the drift
monitors fire when, and only when, they should.

The generator itself (:mod:`producer.simulate.simulation`) imports pandas; it is
not imported here, so a command line that only lists ``simulate`` stays light.
"""

from producer.simulate.archetypes import ARCHETYPES, Archetype
from producer.simulate.drift import DriftEpisode, parse_drift

__all__ = [
    "ARCHETYPES",
    "Archetype",
    "DriftEpisode",
    "parse_drift",
]
