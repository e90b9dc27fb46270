"""Message and document contracts (pydantic v2), one module per contract.

Every message on a topic is the JSON of one of these models, so any client
(kcat, Java, Go) reads it without our code.
"""

from shared.contracts.dead_letter import DeadLetter
from shared.contracts.drift_alert import DriftAlert
from shared.contracts.invoice import GUEST_KEY_PREFIX, InvoiceLine
from shared.contracts.model_snapshot import ModelSnapshot
from shared.contracts.segment_change import SegmentChange

__all__ = ["GUEST_KEY_PREFIX", "DeadLetter", "DriftAlert", "InvoiceLine", "ModelSnapshot", "SegmentChange"]
