"""One exception hierarchy for the whole project.

Every error we raise derives from :class:`SegmentationError`, so a caller can catch
ours apart from library errors. The split below maps directly onto what happens
next:

* :class:`ConfigError` and :class:`InputError` are *whole-run* problems: the process
  stops at once with a message that says what to fix.
* :class:`RecordError` subclasses are *one-record* problems: the record goes to the
  dead-letter topic with ``kind`` as its reason code, and processing goes on.
* :class:`ServiceUnavailableError` is transient: callers retry with backoff.
"""

from __future__ import annotations


class SegmentationError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(SegmentationError):
    """A setting is missing or wrong; the message names the variable to fix."""


class AuthenticationFailedError(ConfigError):
    """Redis or Kafka refused the credentials; the message names the settings that hold them.

    A configuration problem, not an outage: retrying with the same credentials
    cannot succeed, so the process stops (the secret itself is never printed).
    """


class InputError(SegmentationError):
    """A whole input file cannot be used (layout, emptiness, corruption, encoding)."""


class UnknownLayoutError(InputError):
    """The file's columns match neither Online Retail nor Online Retail II."""


class EmptyInputError(InputError):
    """The file (or the selected window) holds no rows."""


class CorruptInputError(InputError):
    """The file cannot be read to the end: truncated archive, wrong encoding, bad sheet."""


class CheckpointMismatchError(InputError):
    """A resume checkpoint belongs to another Kafka cluster, topic or partition layout than the broker has now.

    Resuming would skip rows that are not on the topic (or place customers on
    other partitions than before), so the replay stops and says how to go on.
    """


class RecordError(SegmentationError):
    """One record is unusable; it is dead-lettered with ``kind`` as the reason code."""

    kind = "invalid_record"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MissingFieldError(RecordError):
    """A required field is absent or empty."""

    kind = "missing_field"


class InvalidNumberError(RecordError):
    """A numeric field does not parse as a number."""

    kind = "invalid_number"


class InvalidTimestampError(RecordError):
    """The event time does not parse."""

    kind = "invalid_timestamp"


class OutOfRangeError(RecordError):
    """A value parses but is impossible or absurd (negative price, huge quantity)."""

    kind = "out_of_range"


class FutureEventError(RecordError):
    """The event time lies too far ahead of its partition's time (or of the wall clock)."""

    kind = "future_event_time"


class LateEventError(RecordError):
    """The event is older than the deduplication window: applying it could count it twice."""

    kind = "too_late"


class MisroutedError(RecordError):
    """The record is on another partition than its key's: its customer's state lives elsewhere."""

    kind = "wrong_partition"


class DecodeError(RecordError):
    """A Kafka message is not valid JSON or does not match its contract."""

    kind = "decode_error"


class UnknownCustomerError(SegmentationError):
    """No record for this customer id in Redis."""

    def __init__(self, customer_id: str, prefix: str) -> None:
        super().__init__(
            f"customer {customer_id} has no record under Redis prefix {prefix!r}: check the id (as in the data, "
            "e.g. 17850; guests have none), that the bootstrap window or the stream has reached this customer, "
            "and SEG_REDIS__KEY_PREFIX"
        )
        self.customer_id = customer_id


class UnknownIncidentError(SegmentationError):
    """No drift incident with this id among those Redis keeps."""

    def __init__(self, incident_id: str) -> None:
        super().__init__(
            f"no drift incident {incident_id!r} among the open ones and the recent alerts kept in Redis "
            "(SEG_MONITOR_RECENT_ALERTS): list them with GET /incidents?state=all or python -m worker alerts --recent N"
        )


class MissingTopicError(SegmentationError):
    """The topic has no partitions: nothing was ever published to it."""


class ServiceUnavailableError(SegmentationError):
    """Kafka or Redis does not answer; the caller retries with backoff."""


class OffsetsBeyondLogError(SegmentationError):
    """Redis says to resume a partition at an offset the topic's log does not have.

    The broker's data was wiped, the topic re-created, or retention removed records
    not applied yet. Skipping silently would lose events; the worker stops and says
    how to recover.
    """

    def __init__(self, offsets: dict[int, int]) -> None:
        where = ", ".join(f"partition {p} at offset {o}" for p, o in sorted(offsets.items()))
        super().__init__(
            f"the stored offsets are outside the topic's log ({where}): the broker lost data or the topic was "
            "re-created, so the state in Redis no longer matches it. Re-bootstrap the state "
            "(python -m worker bootstrap --force …) and replay, or accept the gap with "
            "python -m worker reset-offsets --to log-end"
        )
        self.offsets = offsets


class DeliveryError(ServiceUnavailableError):
    """Records were not acknowledged by the broker (failed, or not within the bound).

    ``acknowledged`` counts the records acknowledged from the start, in send
    order; the rest may or may not have reached the broker, so the caller keeps
    them and sends them again (consumers drop the repeats by id).
    """

    def __init__(self, message: str, acknowledged: int) -> None:
        super().__init__(message)
        self.acknowledged = acknowledged


class FetcherExitedError(ServiceUnavailableError):
    """The worker's fetcher process is gone; the worker starts a new one from the applied offsets."""


class ModelError(SegmentationError):
    """The model cannot be fitted, stored or switched as asked."""


class UnknownModelVersionError(ModelError):
    """No stored ``model:v{n}`` for the version asked."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"no model version {version} is stored: list the versions with GET /models or python -m worker models"
        )


class LiveModelExistsError(ModelError):
    """A live model is already in Redis and ``--force`` was not given."""


class FencedError(SegmentationError):
    """Another process took over what this one was writing (a partition, the drift monitor's offset).

    The writer stops writing, reloads what it still owns from Redis and goes on; nothing it
    had in memory is written over the newer state.
    """

    def __init__(self, partition: int, offset: int, why: str = "") -> None:
        reason = why or f"it is at offset {offset} in Redis"
        super().__init__(f"partition {partition}: {reason}; another worker owns it now")
        self.partition = partition
        self.offset = offset
