"""Dead-letter publishing for records the worker cannot use."""

from __future__ import annotations

from kafka import KafkaProducer

from shared.contracts.dead_letter import DeadLetter
from shared.exceptions import RecordError
from worker.stream.fetcher import FetchedRecord


def dead_letter_record(record: FetchedRecord, error: RecordError) -> DeadLetter:
    """The dead letter of a consumed record, with its source coordinates."""
    raw = record.value.decode("utf-8", errors="replace") if record.value else ""
    return DeadLetter(
        stage="decode",
        reason=error.kind,
        error_class=type(error).__name__,
        error=str(error),
        field=error.field,
        raw=raw,
        source=record.topic,
        position=f"{record.partition}:{record.offset}",
    )


def send_dead_letter(producer: KafkaProducer, topic: str, letter: DeadLetter, key: bytes | None) -> None:
    """Queue the dead letter; the caller flushes before committing the batch."""
    producer.send(topic, key=key, value=letter.model_dump_json().encode(), headers=letter.headers())
