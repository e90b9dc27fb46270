"""``customer ID``: one customer's state and recent segment changes.

The state comes from Redis through :mod:`worker.queries.state`, as the API's
``GET /customers/{id}`` reads it. The changes come from the segment-change topic.
Only the customer's partition is read (the worker keys changes by customer id, so
the default partitioner's hash says which one), from its start to its end: that
costs one partition's worth of reading, about a second per 100k changes.
``--changes 0`` skips it.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.contracts.segment_change import SegmentChange
from shared.exceptions import MissingTopicError
from shared.redis_client import connect
from shared.settings import Settings
from shared.topic_reader import ReadOptions, read
from worker.queries import state
from worker.queries.plan import run as run_query
from worker.queries.views import LastChange, SegmentLabel
from worker.tools import changes as change_feed
from worker.tools.output import json_line, table


def recent_changes(settings: Settings, customer_id: str, limit: int) -> list[SegmentChange]:
    """The customer's last ``limit`` changes by sequence, each sequence once."""
    if limit <= 0:
        return []
    options = ReadOptions(from_beginning=True, to_end=True, key=customer_id)
    by_sequence: dict[int, SegmentChange] = {}
    try:
        for record in read(settings.kafka, settings.topics.segment_changes, options):
            if record.key is not None and record.key.decode() == customer_id:
                change = SegmentChange.model_validate_json(record.value)
                by_sequence[change.sequence] = change
    except MissingTopicError:
        return []
    return [by_sequence[s] for s in sorted(by_sequence)[-limit:]]


def describe(settings: Settings, customer_id: str, limit: int) -> dict[str, Any]:
    """Everything the command shows, as one JSON-ready dict: the customer view plus ``recent_changes``."""
    client, keys = connect(settings)
    view = run_query(client, state.customer(keys, state.Snapshots(), customer_id, top=0))
    changes = recent_changes(settings, customer_id, limit)
    if changes:
        view = view.model_copy(update={"last_change": LastChange.of(changes[-1])})
    return view.model_dump(mode="json", exclude={"recommendations"}) | {
        "recent_changes": [c.model_dump(mode="json") for c in changes]
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="customer id as in the data, e.g. 17850")
    parser.add_argument(
        "--changes",
        type=int,
        default=5,
        metavar="N",
        help="show the last N segment changes (reads the customer's partition of the topic; 0 skips; default 5)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document instead of text")


def _name(segment: dict[str, Any] | None) -> str:
    return "-" if segment is None else f"{segment['id']} {segment['name']}"


def run(settings: Settings, args: argparse.Namespace) -> int:
    info = describe(settings, args.id, args.changes)
    if args.json:
        print(json_line(info))
        return 0
    print(f"customer {info['customer_id']} as of {info['features_as_of']}")
    print(f"published: {_name(info['published'])}   assigned: {_name(info['assigned'])}   sequence: {info['sequence']}")
    if info["published"]:
        print(f"  {SegmentLabel.model_validate(info['published']).description}")
    print()
    print(table(["aggregate", "value"], [[k, v] for k, v in info["aggregates"].items()]))
    print()
    features = info["features"] or {}
    print(table(["feature", "value"], [[k, float(v)] for k, v in features.items()]) if features else "no features yet")
    if args.changes > 0:
        print()
        changes = [SegmentChange.model_validate(c) for c in info["recent_changes"]]
        headers = [name for name, _ in change_feed.FEED.columns]
        print(table(headers, [change_feed.FEED.row(c) for c in changes]) if changes else "no segment changes")
    return 0
