"""Drift detection: monitors over event-time windows, calibrated thresholds, incidents as alerts.

The worker drives one :class:`DriftEngine` per live model version; see
:mod:`worker.drift.engine` for when to call what.
"""

from worker.drift.engine import DriftEngine
from worker.drift.settings import DriftSettings

__all__ = ["DriftEngine", "DriftSettings"]
