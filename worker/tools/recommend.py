"""``recommend ID``: the top products of a customer's published segment that the customer has not had.

Read through :mod:`worker.queries.state` as the API's ``GET /customers/{id}``
(the rule of :func:`shared.state.recommendations.recommend`, the library call for
consumers with a Redis client), with the segment's name from the live model.
"""

from __future__ import annotations

import argparse
from typing import Any

from shared.redis_client import connect
from shared.settings import Settings
from worker.queries import state
from worker.queries.plan import run as run_query
from worker.tools.output import json_line, table


def recommendations(settings: Settings, customer_id: str, top: int) -> dict[str, Any]:
    """Everything the command shows, as one JSON-ready dict (``segment`` None while unpublished)."""
    client, keys = connect(settings)
    view = run_query(client, state.customer(keys, state.Snapshots(), customer_id, top))
    return view.model_dump(mode="json", include={"customer_id", "recommendations"}) | {
        "segment": None if view.published is None else view.published.model_dump(mode="json")
    }


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
