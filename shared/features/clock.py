"""Event time as integers: microseconds since 1970 (naive, as in the source) and month numbers.

Why integers: the worker keeps every customer's times in numpy columns and must
give the same bytes whatever the batch size or the machine; integer microseconds
are exact where float seconds round. Month numbers (``year * 12 + month - 1``)
index the bounded window of monthly spend.

>>> from datetime import datetime
>>> at = datetime(2011, 6, 1, 8, 26)
>>> from_micros(to_micros(at)) == at, month_key(month_number(at))
(True, '2011-06')
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

EPOCH = datetime(1970, 1, 1)
MICROS_PER_SECOND = 1_000_000
SECONDS_PER_DAY = 86_400.0
MICROS_PER_DAY = 86_400 * MICROS_PER_SECOND
NO_TIME = np.iinfo(np.int64).min  # "never": no purchase yet, no published change yet
NO_MONTH = -1


def to_micros(at: datetime) -> int:
    """Microseconds since 1970-01-01 of a naive event time."""
    delta = at - EPOCH
    return (delta.days * 86_400 + delta.seconds) * MICROS_PER_SECOND + delta.microseconds


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(micros))


def optional_micros(at: datetime | None) -> int:
    return NO_TIME if at is None else to_micros(at)


def optional_datetime(micros: int) -> datetime | None:
    return None if micros == NO_TIME else from_micros(micros)


def iso(micros: int) -> str:
    """ISO 8601 text of a time, or "" for :data:`NO_TIME` (how records store times)."""
    return "" if micros == NO_TIME else from_micros(micros).isoformat()


def from_iso(text: str | None) -> int:
    return NO_TIME if not text else to_micros(datetime.fromisoformat(text))


def month_number(at: datetime) -> int:
    return at.year * 12 + at.month - 1


def month_numbers(micros: np.ndarray) -> np.ndarray:
    """Vectorised :func:`month_number` of microsecond times."""
    months = np.asarray(micros, dtype=np.int64).astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    return months + 1970 * 12


def month_key(number: int) -> str:
    """``YYYY-MM`` of a month number (how records name months)."""
    return f"{number // 12:04d}-{number % 12 + 1:02d}"


def month_of_key(key: str) -> int:
    year, month = key.split("-")
    return int(year) * 12 + int(month) - 1


def day_start(micros: int) -> int:
    """The midnight (event time) at or before ``micros``."""
    return micros - micros % MICROS_PER_DAY
