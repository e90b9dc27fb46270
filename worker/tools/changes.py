"""``changes``: follow the segment-change topic, one line per customer move.

A change matches ``--segment`` when the customer moved into *or* out of that
segment (by id or name, case-insensitive); repeats of the same (customer,
sequence) are shown once.
"""

from __future__ import annotations

import argparse

from shared.contracts.segment_change import SegmentChange, SegmentRef
from shared.settings import Settings
from worker.tools.follow import Feed, add_follow_arguments, follow

FEED: Feed[SegmentChange] = Feed(
    contract=SegmentChange,
    identity=lambda change: (change.customer_id, change.sequence),
    columns=(("event time", 19), ("customer", 9), ("from", 18), ("to", 18), ("reason", 14), ("seq", 5), ("model", 5)),
    row=lambda change: (
        change.event_time.isoformat(sep=" ", timespec="seconds"),
        change.customer_id,
        _ref(change.previous),
        _ref(change.current),
        change.reason,
        change.sequence,
        f"v{change.model_version}",
    ),
)


def _ref(segment: SegmentRef | None) -> str:
    return "-" if segment is None else f"{segment.id} {segment.name}"


def _in_segment(segment: SegmentRef | None, wanted: str) -> bool:
    return segment is not None and (str(segment.id) == wanted or segment.name.lower() == wanted.lower())


def matches(change: SegmentChange, customer: str | None, segment: str | None) -> bool:
    """The ``--customer`` and ``--segment`` filters."""
    if customer is not None and change.customer_id != customer:
        return False
    return segment is None or _in_segment(change.previous, segment) or _in_segment(change.current, segment)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customer", metavar="ID", help="only this customer's changes")
    parser.add_argument("--segment", metavar="ID|NAME", help="only changes into or out of this segment")
    add_follow_arguments(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Follow until ``--max`` or ``--timeout`` (or Ctrl-C)."""
    follow(
        settings.kafka,
        settings.topics.segment_changes,
        FEED,
        lambda change: matches(change, args.customer, args.segment),
        args,
    )
    return 0
