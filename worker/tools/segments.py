"""``segments``: the live segments now: size, share and median profile.

Sizes are the live member counts (all partitions' statistics added up, or the
bootstrap's before any worker ran). Profiles are the training-time medians
stored in the snapshot.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from shared.contracts.model_snapshot import ModelSnapshot
from shared.redis_client import connect
from shared.settings import Settings
from shared.state.model_stats import live_stats
from shared.state.model_store import require_current
from worker.segmentation.profile import PROFILE_COLUMNS
from worker.tools.output import json_line, table


def segment_rows(snapshot: ModelSnapshot, counts: np.ndarray) -> list[dict[str, Any]]:
    """One dict per segment: id, name, size, share, profile."""
    sizes = [int(count) for count in counts]
    total = sum(sizes) or 1
    return [
        {"id": s.id, "name": s.name, "size": size, "share": size / total, "profile": s.profile}
        for s, size in zip(snapshot.segments, sizes, strict=True)
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document instead of a table")


def run(settings: Settings, args: argparse.Namespace) -> int:
    client, keys = connect(settings)
    snapshot = require_current(client, keys)
    rows = segment_rows(snapshot, live_stats(client, keys, snapshot).counts)
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
