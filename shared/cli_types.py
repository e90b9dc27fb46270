"""Argument types shared by the command lines, so every CLI rejects a bad value the same way."""

from __future__ import annotations

import argparse
from datetime import datetime


def iso_datetime(text: str) -> datetime:
    """An ISO date or date-time (``2011-06-01`` or ``2011-06-01T12:00``)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date (2011-06-01 or 2011-06-01T12:00)") from None


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value
