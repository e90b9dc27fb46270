"""``models``: every model version in Redis, with its training window and quality, marking the live one."""

from __future__ import annotations

import argparse
import re
from typing import Any

import redis

from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import ModelError
from shared.redis_client import connect
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.model_store import NO_MODEL_HINT, current_version, load_version
from worker.tools.output import json_line, table


def versions(client: redis.Redis, keys: Keys) -> list[int]:
    """Version numbers of the stored ``model:v{n}`` keys, ascending."""
    pattern = re.escape(keys.model(0)[:-1]) + r"(\d+)"
    glob = re.sub(r"([\[\]*?\\])", r"\\\1", keys.model(0)[:-1]) + "*"
    found = (re.fullmatch(pattern, key) for key in client.scan_iter(match=glob, count=1000))
    return sorted(int(match.group(1)) for match in found if match)


def describe(snapshot: ModelSnapshot, live: bool) -> dict[str, Any]:
    start, end = snapshot.training_window
    return {
        "version": snapshot.version,
        "current": live,
        "created_at": snapshot.created_at.isoformat(timespec="seconds"),
        "k": snapshot.k,
        "training_start": start.isoformat() if start else None,
        "training_end": end.isoformat(),
        "customers": snapshot.customers,
        "quality": snapshot.quality,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document per model instead of a table")


def run(settings: Settings, args: argparse.Namespace) -> int:
    client, keys = connect(settings)
    live = current_version(client, keys)
    models = [describe(load_version(client, keys, v), v == live) for v in versions(client, keys)]
    if not models:
        raise ModelError(f"no model stored under Redis prefix {keys.prefix!r}: {NO_MODEL_HINT}")
    if args.json:
        for model in models:
            print(json_line(model))
        return 0
    headers = ["version", "live", "created at", "k", "training window", "customers", "quality"]
    rows = [
        [
            f"v{m['version']}",
            "*" if m["current"] else "",
            m["created_at"],
            m["k"],
            f"{m['training_start'] or '…'} → {m['training_end']}",
            m["customers"],
            " ".join(f"{name}={value:.3g}" for name, value in sorted(m["quality"].items())),
        ]
        for m in models
    ]
    print(table(headers, rows))
    return 0
