"""Dead letters of records the worker cannot use: what failed, where, why, and the raw value.

A dead letter goes into the partition's outbox with the batch that passes the
record's offset, so it is sent before (never after) the offset moves on, and a
crash repeats it rather than losing it. Raw values are kept whole up to
:data:`MAX_RAW_BYTES`; a larger one is cut there, with its full size and a hash,
so the dead letter itself always fits in a Kafka message.
"""

from __future__ import annotations

import hashlib

from shared.contracts.dead_letter import DeadLetter
from worker.stream.decode import Refused
from worker.stream.outbox import dead_letter_entry

MAX_RAW_BYTES = 64 * 1024


def raw_text(value: bytes | None) -> str:
    """The raw value as text, cut at :data:`MAX_RAW_BYTES` with its size and hash when larger."""
    if not value:
        return ""
    if len(value) <= MAX_RAW_BYTES:
        return value.decode("utf-8", errors="replace")
    digest = hashlib.blake2b(value, digest_size=16).hexdigest()
    head = value[:MAX_RAW_BYTES].decode("utf-8", errors="replace")
    return f"{head}… [truncated: {len(value):,} bytes in all, blake2b-128 {digest}]"


def dead_letter(topic: str, refused: Refused) -> str:
    """The outbox entry of a refused record."""
    error = refused.error
    letter = DeadLetter(
        stage=refused.stage,  # type: ignore[arg-type]
        reason=error.kind,
        error_class=type(error).__name__,
        error=str(error),
        field=error.field,
        raw=raw_text(refused.value),
        source=topic,
        position=f"{refused.partition}:{refused.offset}",
    )
    return dead_letter_entry(letter.model_dump_json(), refused.key, letter.headers())
