"""A dead-letter record: what failed, where, why, and the raw input to replay it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["read", "validate", "decode", "apply"]


class DeadLetter(BaseModel):
    """JSON value on the dead-letter topic; the same facts go into Kafka headers."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage
    reason: str = Field(description="machine code, e.g. missing_field, invalid_number, decode_error")
    error_class: str
    error: str = Field(description="human-readable message")
    field: str | None = None
    raw: dict[str, str | None] | str = Field(description="the input row (columns as read) or the raw message")
    source: str = Field(description="file path or topic")
    position: str = Field(description="row number in the file, or partition:offset")
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def headers(self) -> list[tuple[str, bytes]]:
        """Standard dead-letter headers, so tools can route without parsing the value."""
        return [
            ("dlq.stage", self.stage.encode()),
            ("dlq.reason", self.reason.encode()),
            ("dlq.error.class", self.error_class.encode()),
            ("dlq.error.message", self.error[:1000].encode()),
            ("dlq.source", self.source.encode()),
            ("dlq.position", self.position.encode()),
        ]
