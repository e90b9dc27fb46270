"""Log output of the worker command: readable text, or one JSON object per line.

JSON lines are for log shippers: every ``extra`` field a log call passes (for
example ``partition`` and ``offset`` of a dead letter) becomes a key of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(name)s %(message)s"
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


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


def configure_logging(log_format: LogFormat = "text") -> None:
    """Log INFO and above to stderr in ``log_format``, replacing any earlier setup."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    quiet_kafka_internals()


def quiet_kafka_internals() -> None:
    """Silence kafka-python's event-loop timing warnings.

    Its I/O thread warns whenever a task held the interpreter over 100 ms, which a
    worker applying a batch of thousands of records does by design; the warnings
    say nothing an operator can act on. Connection and protocol errors still log.
    """
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
