"""``segments``: the live segments now: size, share, median profile and what sets each apart.

Read through :mod:`worker.queries.state` as the API's ``GET /segments``: sizes are
the live member counts (all partitions' statistics added up, or the bootstrap's
before any worker ran); profiles are the training-time medians stored in the snapshot.
"""

from __future__ import annotations

import argparse

from shared.redis_client import connect
from shared.settings import Settings
from worker.queries import state
from worker.queries.plan import run as run_query
from worker.segmentation.profile import PROFILE_COLUMNS
from worker.tools.output import table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")


def run(settings: Settings, args: argparse.Namespace) -> int:
    client, keys = connect(settings)
    view = run_query(client, state.segments(keys, state.Snapshots(), products=0))
    if args.json:
        print(view.model_dump_json(exclude={"segments": {"__all__": {"top_products"}}}))
        return 0
    print(f"model v{view.model_version}: {len(view.segments)} segments, {view.customers:,} customers")
    headers = ["id", "name", "size", "share"] + [label for _, label in PROFILE_COLUMNS]
    body = [
        [s.id, s.name, s.size, f"{s.share:.1%}"] + [s.profile.get(name) for name, _ in PROFILE_COLUMNS]
        for s in view.segments
    ]
    print(table(headers, body))
    print()
    for s in view.segments:
        print(f"{s.id:>3}  {s.name}: {s.description or '(no description: a model from before descriptions)'}")
    return 0
