"""``segments``: the live segments now: size, share and median profile.

Sizes are the member counts in ``model:stats`` (kept by the bootstrap and the
workers); a segment without a count there falls back to the snapshot's count at
training time. Profiles are the training-time medians stored in the snapshot.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from shared.contracts.model_snapshot import ModelSnapshot
from shared.model_stats import count_field
from shared.settings import Settings
from worker.tools.output import json_line, table
from worker.tools.state import connect, live_model

PROFILE_COLUMNS = (
    ("recency_days", "recency d"),
    ("frequency", "invoices"),
    ("monetary", "spend"),
    ("avg_order_value", "order value"),
    ("tenure_days", "tenure d"),
    ("cancellation_rate", "cancel rate"),
)


def segment_rows(snapshot: ModelSnapshot, stats: Mapping[str, str]) -> list[dict[str, Any]]:
    """One dict per segment: id, name, size, share, profile."""
    sizes = [int(float(stats.get(count_field(s.id), s.count))) for s in snapshot.segments]
    total = sum(sizes) or 1
    return [
        {"id": s.id, "name": s.name, "size": size, "share": size / total, "profile": s.profile}
        for s, size in zip(snapshot.segments, sizes, strict=True)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")


def run(settings: Settings, args: argparse.Namespace) -> int:
    client, keys = connect(settings)
    snapshot = live_model(client, keys)
    rows = segment_rows(snapshot, client.hgetall(keys.model_stats))
    if args.json:
        print(json_line({"model_version": snapshot.version, "segments": rows}))
        return 0
    print(f"model v{snapshot.version}: {len(rows)} segments, {sum(r['size'] for r in rows):,} customers")
    headers = ["id", "name", "size", "share"] + [label for _, label in PROFILE_COLUMNS]
    body = [
        [r["id"], r["name"], r["size"], f"{r['share']:.1%}"] + [r["profile"].get(name) for name, _ in PROFILE_COLUMNS]
        for r in rows
    ]
    print(table(headers, body))
    return 0
