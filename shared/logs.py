"""Log output of every command: readable text or one JSON object per line, and kafka-python kept quiet.

JSON lines are for log shippers: every ``extra`` field a log call passes (for
example ``partition`` and ``offset`` of a dead letter) becomes a key of its own.

kafka-python logs every step of every reconnect attempt (36 lines for one
command while the broker is down) and, at a clean shutdown, cancelled metadata
requests at ERROR. A new user reads either as a failure of ours. So its
connection messages are folded into one message of ours per outage (repeated
once a minute with a count while it lasts), its shutdown cancellations are
dropped, and everything else it says at WARNING or above still shows.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# What kafka-python says while a broker cannot be reached, and when a client closes mid-request.
_CONNECTION_WORDS = (
    "connect",
    "bootstrap",
    "not ready",
    "broker",
    "node",
    "timed out",
    "timeout",
    "nobrokers",
    "network data",  # a socket read failing during a stall: kafka-python logs it with a traceback
    "socket",
)
_SHUTDOWN_WORDS = ("cancelled",)
FOLDED_LOGGER = "shared.kafka"


class JsonFormatter(logging.Formatter):
    """time, level, logger, message, the record's ``extra`` fields, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry |= {name: value for name, value in vars(record).items() if name not in _RECORD_FIELDS}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class KafkaNoise(logging.Filter):
    """Folds kafka-python's reconnect messages into one of ours per ``interval_s``; drops shutdown cancellations.

    >>> noise = KafkaNoise(interval_s=60.0)
    >>> def record(name, text):
    ...     return logging.LogRecord(name, logging.ERROR, "", 0, text, (), None)
    >>> first = record("kafka.net.manager", "Connection failed: KafkaConnectionError: 111 ECONNREFUSED")
    >>> noise.filter(first), first.name
    (True, 'shared.kafka')
    >>> noise.filter(record("kafka.net.manager", "Bootstrap bootstrap-0 not ready; waiting 0.46 secs"))
    False
    >>> noise.filter(record("kafka.cluster", "Metadata refresh: failed Cancelled"))
    False
    >>> noise.filter(record("kafka.net.transport", "Error receiving network data closing socket"))
    False
    >>> noise.filter(record("worker", "a message of ours"))
    True
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._shown_at: float | None = None
        self._folded = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("kafka") or record.levelno < logging.WARNING:
            return True
        text = record.getMessage().lower()
        if any(word in text for word in _SHUTDOWN_WORDS):
            return False
        if not any(word in text for word in _CONNECTION_WORDS):
            return True
        now = time.monotonic()
        if self._shown_at is not None and now - self._shown_at < self.interval_s:
            self._folded += 1
            return False
        again = (
            f" ({self._folded} more connection messages in the last {self.interval_s:.0f} s)" if self._folded else ""
        )
        record.name, record.levelno, record.levelname = FOLDED_LOGGER, logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None  # kafka-python's traceback says nothing an operator can act on
        record.msg, record.args = (
            f"Kafka broker not reachable{again}: {record.getMessage()}. Retrying; check that the broker runs and "
            "that SEG_KAFKA__BOOTSTRAP_SERVERS points at it",
            (),
        )
        self._shown_at, self._folded = now, 0
        return True


def configure_logging(log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """Log ``level`` and above to stderr in ``log_format``, replacing any earlier setup."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    quiet_kafka_internals()


def quiet_kafka_internals() -> None:
    """Keep kafka-python to what an operator can act on, in this process (the fetcher child calls it too).

    Its connection steps log at INFO and its I/O thread warns whenever a task held
    the interpreter over 100 ms, which a worker applying a batch of thousands of
    records does by design. What is left at WARNING goes through :class:`KafkaNoise`
    on every handler of the root logger (one is added where there is none).
    """
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    root = logging.getLogger()
    if not root.handlers:
        fallback = logging.StreamHandler(sys.stderr)
        fallback.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(fallback)
    for handler in root.handlers:
        if not any(isinstance(existing, KafkaNoise) for existing in handler.filters):
            handler.addFilter(KafkaNoise())
