"""Drift observations as a step gathers them, written in the contract's JSON without a pydantic object each.

Why: a step scores thousands of customers, and each scoring is an observation
(:class:`~shared.contracts.drift_observation.AssignmentObservation`). Building and
validating a pydantic model per observation cost the worker's main thread about as
much as scoring them. The values here come from the worker's own columns (types
known, nothing to validate), so they are kept as msgspec structs with the
contract's field names and order, and encoded in C; the drift monitor parses the
bytes with the pydantic contract as before. ``tests/test_observations.py`` checks
that both give the same JSON, byte for byte (a float of 1e16 or more aside, which
msgspec spells ``1e16`` and pydantic ``1e+16``: the same number to any parser).

>>> from datetime import datetime
>>> share = Observations()
>>> share.assignment(datetime(2011, 6, 1, 8, 26), "17850", None, 2, 0.5, [0.25, -1.0])
>>> share.encode(0, 120, datetime(2011, 6, 1, 9), 1)[:57]
'{"source_partition":0,"end_offset":120,"partition_time":"'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import msgspec


class _Invoice(msgspec.Struct):
    event_time: datetime
    customer_id: str
    order_value: float
    lines: int
    days_since_previous: float | None


class _Assignment(msgspec.Struct):
    event_time: datetime
    customer_id: str
    before: int | None
    after: int
    distance: float
    vector: list[float] | None


class _Share(msgspec.Struct):
    source_partition: int
    end_offset: int
    partition_time: datetime
    model_version: int
    invoices: list[_Invoice]
    assignments: list[_Assignment]


_encode = msgspec.json.Encoder().encode


@dataclass
class Observations:
    """One partition's observations of a step, in the order they were made."""

    invoices: list[_Invoice] = field(default_factory=list)
    assignments: list[_Assignment] = field(default_factory=list)

    def invoice(
        self, at: datetime, customer_id: str, order_value: float, lines: int, days_since_previous: float | None
    ) -> None:
        self.invoices.append(_Invoice(at, customer_id, order_value, lines, days_since_previous))

    def assignment(
        self, at: datetime, customer_id: str, before: int | None, after: int, distance: float, vector: list[float]
    ) -> None:
        self.assignments.append(_Assignment(at, customer_id, before, after, distance, vector))

    def encode(self, source_partition: int, end_offset: int, partition_time: datetime, model_version: int) -> str:
        """The share as :class:`~shared.contracts.drift_observation.DriftObservations` JSON."""
        share = _Share(source_partition, end_offset, partition_time, model_version, self.invoices, self.assignments)
        return _encode(share).decode()
