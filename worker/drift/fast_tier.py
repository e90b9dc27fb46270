"""Fast warning tier: river's ADWIN on a standardised signal.

ADWIN reacts within tens of values to a mean change, but its false-alarm rate
on real, clumpy data is not calibrated, so a detection only bumps the severity
of its family's incident (and shows up as a contribution); it never opens one.
Signals are standardised first (ADWIN's bound assumes values in [0, 1]-ish scale,
and raw order values would make its sensitivity depend on the currency).

ADWIN's buckets cannot be serialised, so the tier keeps the values seen since
its last reset and rebuilds the detector by replaying them: exact and JSON-able.

>>> tier = FastTier(mean=0.0, std=1.0, delta=0.002, memory=4000)
>>> any(tier.update(0.0) for _ in range(500))
False
>>> any(tier.update(3.0) for _ in range(100))
True
"""

from __future__ import annotations

from typing import Any

from river import drift


class FastTier:
    """ADWIN on (value - mean) / std, rebuilt from at most ``memory`` remembered values."""

    def __init__(self, mean: float, std: float, delta: float, memory: int) -> None:
        self.mean, self.std, self.delta, self.memory = mean, std, delta, memory
        self.values: list[float] = []
        self.shift = 0.0
        self.detector = drift.ADWIN(delta=delta)

    def update(self, value: float) -> bool:
        """Feed one raw value; True when ADWIN sees a change (then the detector restarts on new values)."""
        standardised = (value - self.mean) / self.std
        before = self.detector.estimation
        self.detector.update(standardised)
        self.values.append(standardised)
        if self.detector.drift_detected:
            self.shift = self.detector.estimation - before
            self._rebuild([])
            return True
        if len(self.values) > self.memory:
            self._rebuild(self.values[-(self.memory // 2) :])
        return False

    def _rebuild(self, values: list[float]) -> None:
        self.detector = drift.ADWIN(delta=self.delta)
        for value in values:
            self.detector.update(value)
        self.values = list(values)

    def state_dict(self) -> dict[str, Any]:
        settings = {"mean": self.mean, "std": self.std, "delta": self.delta, "memory": self.memory}
        return {**settings, "values": self.values, "shift": self.shift}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FastTier:
        tier = cls(state["mean"], state["std"], state["delta"], state["memory"])
        tier._rebuild(state["values"])
        tier.shift = state["shift"]
        return tier
