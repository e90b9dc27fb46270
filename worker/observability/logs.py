"""Moved to :mod:`shared.logs` (the producer logs the same way); kept for worker/stream's imports until they move."""

from shared.logs import JsonFormatter, LogFormat, configure_logging, quiet_kafka_internals

__all__ = ["JsonFormatter", "LogFormat", "configure_logging", "quiet_kafka_internals"]
