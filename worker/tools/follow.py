"""Following an event topic: decode, drop repeats, filter, print; shared by ``changes`` and ``alerts``.

Why a repeat can arrive: the worker publishes at least once (an outbox replayed
after a crash), so the same event may be on the topic twice; each feed names the
identity that makes two messages the same event.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TextIO, TypeVar

from pydantic import BaseModel, ValidationError

from shared.settings import KafkaSettings
from shared.topic_reader import ReadOptions, read
from worker.tools.output import json_line

Event = TypeVar("Event", bound=BaseModel)


@dataclass(frozen=True)
class Feed(Generic[Event]):
    """One topic's contract, event identity and table layout (header, width)."""

    contract: type[Event]
    identity: Callable[[Event], Hashable]
    columns: Sequence[tuple[str, int]]
    row: Callable[[Event], Sequence[object]]


def add_follow_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every follower takes."""
    parser.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest message (default: only new ones)"
    )
    parser.add_argument("--max", type=int, metavar="N", help="exit after printing N events")
    parser.add_argument("--timeout", type=float, metavar="S", help="exit after S seconds without a new message")
    parser.add_argument("--json", action="store_true", help="one JSON document per line instead of a table")


def follow(
    settings: KafkaSettings,
    topic: str,
    feed: Feed[Event],
    accept: Callable[[Event], bool],
    args: argparse.Namespace,
    out: TextIO | None = None,
) -> int:
    """Print the events of ``topic`` that ``accept`` passes, each identity once; returns how many."""
    out = out or sys.stdout
    if not args.json:
        print(header(feed), file=out, flush=True)
    seen: set[Hashable] = set()
    shown = 0
    records = read(settings, topic, ReadOptions(from_beginning=args.from_beginning, idle_timeout_s=args.timeout))
    try:
        for record in records:
            if args.max is not None and shown >= args.max:
                break
            try:
                event = feed.contract.model_validate_json(record.value)
            except ValidationError as exc:
                print(
                    f"skipped {record.partition}:{record.offset}: not a {feed.contract.__name__}: {exc}",
                    file=sys.stderr,
                )
                continue
            identity = feed.identity(event)
            if identity in seen or not accept(event):
                continue
            seen.add(identity)
            shown += 1
            print(render(feed, event, args.json), file=out, flush=True)
            if args.max is not None and shown >= args.max:
                break
    finally:
        records.close()
    return shown


def render(feed: Feed[Event], event: Event, as_json: bool) -> str:
    """One event as a table row or a JSON line."""
    return json_line(event.model_dump(mode="json")) if as_json else _line(feed, feed.row(event))


def header(feed: Feed[Event]) -> str:
    return _line(feed, [name for name, _ in feed.columns])


def _line(feed: Feed[Event], cells: Sequence[object]) -> str:
    return "  ".join(str(cell).ljust(width) for cell, (_, width) in zip(cells, feed.columns, strict=True)).rstrip()
