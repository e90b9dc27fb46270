"""``customer ID``: one customer's state and recent segment changes.

The changes come from the segment-change topic. Only the customer's partition is
read (the worker keys changes by customer id, so the default partitioner's hash
says which one), from its start to its end: that costs one partition's worth of
reading, about a second per 100k changes. ``--changes 0`` skips it.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.contracts.model_snapshot import ModelSnapshot
from shared.contracts.segment_change import SegmentChange
from shared.exceptions import MissingTopicError, UnknownCustomerError
from shared.features.aggregates import CustomerAggregates
from shared.redis_client import connect
from shared.settings import Settings
from shared.state.customers import find_record
from shared.state.model_store import load_current
from shared.topic_reader import ReadOptions, read
from worker.tools import changes as change_feed
from worker.tools.output import json_line, table


def summary(aggregates: CustomerAggregates) -> dict[str, Any]:
    """The aggregates a person asks about first."""
    return {
        "country": aggregates.country,
        "invoices": aggregates.invoices,
        "cancelled_invoices": aggregates.cancel_invoices,
        "purchase_lines": aggregates.purchase_lines,
        "units": aggregates.units,
        "distinct_products": aggregates.products,
        "gross_spend": round(aggregates.gross_spend, 2),
        "cancelled_amount": round(aggregates.cancel_amount, 2),
        "net_spend": round(aggregates.net_spend, 2),
        "first_purchase": aggregates.first_purchase.isoformat() if aggregates.first_purchase else None,
        "last_purchase": aggregates.last_purchase.isoformat() if aggregates.last_purchase else None,
    }


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


def _segment(snapshot: ModelSnapshot | None, value: int) -> dict[str, Any] | None:
    if value < 0:
        return None
    names = {s.id: s.name for s in snapshot.segments} if snapshot else {}
    return {"id": value, "name": names.get(value, "?")}


def describe(settings: Settings, customer_id: str, limit: int) -> dict[str, Any]:
    """Everything the command shows, as one JSON-ready dict."""
    client, keys = connect(settings)
    record = find_record(client, keys, customer_id)
    if record is None:
        raise UnknownCustomerError(customer_id, keys.prefix)
    snapshot = load_current(client, keys)
    return {
        "customer_id": customer_id,
        "as_of": record.as_of.isoformat() if record.as_of else None,
        "segment": _segment(snapshot, record.segment),
        "published": _segment(snapshot, record.published),
        "sequence": record.seq or None,
        "aggregates": summary(record.aggregates),
        "features": record.features,
        "recent_changes": [c.model_dump(mode="json") for c in recent_changes(settings, customer_id, limit)],
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
    print(f"customer {info['customer_id']} as of {info['as_of']}")
    print(f"segment: {_name(info['segment'])}   published: {_name(info['published'])}   sequence: {info['sequence']}")
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
