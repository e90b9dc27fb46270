"""``models``: every model version in Redis, with its training window, quality and lineage, marking the live one."""

from __future__ import annotations

import argparse

from shared.exceptions import ModelError
from shared.redis_client import connect
from shared.settings import Settings
from shared.state.model_store import NO_MODEL_HINT
from worker.queries import state
from worker.queries.plan import run as run_query
from worker.tools.output import table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON document per model instead of a table")


def run(settings: Settings, args: argparse.Namespace) -> int:
    client, keys = connect(settings)
    models = run_query(client, state.models(keys, state.Snapshots()))
    if not models:
        raise ModelError(f"no model stored under Redis prefix {keys.prefix!r}: {NO_MODEL_HINT}")
    if args.json:
        for model in models:
            print(model.model_dump_json())
        return 0
    headers = ["version", "live", "created at", "k", "training window", "customers", "from", "quality"]
    rows = [
        [
            f"v{m.version}",
            "*" if m.current else "",
            m.created_at.isoformat(timespec="seconds"),
            m.k,
            f"{m.training_start.isoformat() if m.training_start else '…'} → {m.training_end.isoformat()}",
            m.customers,
            "bootstrap" if m.lineage.parent_version is None else f"refresh of v{m.lineage.parent_version}",
            " ".join(f"{name}={value:.3g}" for name, value in sorted(m.metrics.items())),
        ]
        for m in models
    ]
    print(table(headers, rows))
    return 0
