"""``recommend ID``: the top products of a customer's published segment that the customer has not had.

A thin shell over :func:`shared.state.recommendations.recommend` (the library call for
consumers), adding the segment's name from the live model.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from shared.redis_client import connect
from shared.settings import Settings
from shared.state.customers import find_record
from shared.state.model_store import load_current
from shared.state.recommendations import recommend
from worker.tools.output import json_line, table


def recommendations(settings: Settings, customer_id: str, top: int) -> dict[str, Any]:
    """Everything the command shows, as one JSON-ready dict (``segment`` None while unpublished)."""
    client, keys = connect(settings)
    items = recommend(client, keys, customer_id, top)
    record = find_record(client, keys, customer_id)
    segment = None
    if record is not None and record.published >= 0:
        snapshot = load_current(client, keys)
        names = {s.id: s.name for s in snapshot.segments} if snapshot else {}
        segment = {"id": record.published, "name": names.get(record.published, "?")}
    return {"customer_id": customer_id, "segment": segment, "recommendations": [asdict(item) for item in items]}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="customer id as in the data, e.g. 17850")
    parser.add_argument("--top", type=_positive, default=10, metavar="N", help="how many products at most (default 10)")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")


def run(settings: Settings, args: argparse.Namespace) -> int:
    info = recommendations(settings, args.id, args.top)
    if args.json:
        print(json_line(info))
        return 0
    segment = info["segment"]
    if segment is None:
        print(f"customer {args.id} has no published segment yet: nothing to recommend")
        return 0
    rows = info["recommendations"]
    print(f"customer {args.id}, segment {segment['id']} {segment['name']}: {len(rows)} products it has not had")
    body = [[rank, row["stock_code"], row["units"]] for rank, row in enumerate(rows, start=1)]
    print(table(["rank", "stock code", "segment net units"], body))
    return 0
