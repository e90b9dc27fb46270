"""``live-segments``: every command in one, the producer's (``replay``, ``simulate``) and the worker's.

One function and one parser block per subcommand; the producer's come from
:func:`producer.cli.add_commands`. ``python -m worker`` runs the same command line.
Our own errors (:class:`SegmentationError`) end the process with exit code 2 and
a one-line message; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from producer.cli import add_commands as add_producer_commands
from shared.cli_types import iso_datetime
from shared.exceptions import SegmentationError
from shared.logs import configure_logging
from shared.settings import Settings, load
from worker.bootstrap.settings import BootstrapSettings

Command = Callable[[argparse.Namespace], int]


def bootstrap(args: argparse.Namespace) -> int:
    """Fit the first model on history and seed Redis with it (with --if-absent: unless a model is live)."""
    from shared.redis_client import connect
    from shared.state.model_store import current_version
    from worker.bootstrap.pipeline import run_bootstrap
    from worker.bootstrap.summary import summary

    overrides = {
        name: getattr(args, name)
        for name in ("k", "k_min", "k_max", "seed", "model_file")
        if getattr(args, name) is not None
    }
    options = load(BootstrapSettings, **overrides)
    settings = load(Settings)
    client, keys = connect(settings)
    live = current_version(client, keys) if args.if_absent else None
    if live is not None:
        print(f"model v{live} is live under Redis prefix {keys.prefix!r}: nothing to do (--if-absent)")
        return 0
    result = run_bootstrap(
        args.input, args.until, client, keys, options, partitions=settings.topics.partitions, force=args.force
    )
    print(summary(result))
    print(f"\nmodel file: {options.model_file}")
    return 0


def _add_bootstrap(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bootstrap",
        help="fit the initial model on history and seed Redis",
        description="Clean the history before --until, compute every customer's aggregates and features, fit "
        "k-means, store the model (Redis model:v{n} + --model-file) and seed the customer state. Redis and "
        "defaults come from SEG_REDIS__* and SEG_BOOTSTRAP_* variables.",
    )
    parser.add_argument("--input", type=Path, required=True, help="history file (Online Retail .csv[.xz], .xlsx)")
    parser.add_argument(
        "--until", type=iso_datetime, required=True, help="cutoff (ISO date/time): only events before it are used"
    )
    parser.add_argument("--k", type=int, help="fixed number of segments (skips the silhouette search)")
    parser.add_argument("--k-min", type=int, help="smallest k tried by the silhouette search (default 3)")
    parser.add_argument("--k-max", type=int, help="largest k tried by the silhouette search (default 8)")
    parser.add_argument("--seed", type=int, help="random seed of k-means and the silhouette sample (default 42)")
    live = parser.add_mutually_exclusive_group()
    live.add_argument(
        "--force", action="store_true", help="replace a live model (or re-seed state from the same model)"
    )
    live.add_argument(
        "--if-absent",
        action="store_true",
        help="exit 0 at once when any model is live (also one a refresh installed): for start scripts and "
        "Compose, where the bootstrap runs before every start",
    )
    parser.add_argument("--model-file", type=Path, help="where the model JSON is written (default out/model.json)")
    parser.set_defaults(command=bootstrap)


def run(args: argparse.Namespace) -> int:
    """Consume the invoices topic as a member of the worker group."""
    from worker.stream.loop import Worker
    from worker.stream.settings import WorkerSettings

    overrides = {
        name: value for name, value in (("group_id", args.group), ("log_format", args.log_format)) if value is not None
    }
    options = load(WorkerSettings, **overrides)
    configure_logging(options.log_format)
    worker = Worker(load(Settings), options)
    worker.run(until_caught_up=args.until_caught_up)
    print(json.dumps(worker.summary()))
    return 0


def _add_run(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="consume invoices, keep customer state in Redis, publish segment changes",
        description="Join the worker group on the invoices topic and apply every event exactly once: per batch, "
        "customer aggregates, model statistics, the outbox of segment changes and the consumed offsets are "
        "written in one atomic Redis step. Start several to scale out (one per partition at most). SIGTERM or "
        "Ctrl-C finishes the batch, commits and exits 0. Settings: SEG_KAFKA__*, SEG_REDIS__*, SEG_TOPICS__*, "
        "SEG_WORKER_* (see README). With SEG_WORKER_METRICS_PORT set it serves /metrics, /healthz and /readyz.",
    )
    parser.add_argument("--group", help="consumer group id (default SEG_WORKER_GROUP_ID or segment-workers)")
    parser.add_argument(
        "--until-caught-up",
        action="store_true",
        help="exit once every partition of the topic is applied up to its end, by this worker or another "
        "(catch-up jobs, demos)",
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="json: one JSON object per line, with partition/offset fields where they apply "
        "(default SEG_WORKER_LOG_FORMAT or text)",
    )
    parser.set_defaults(command=run)


def reset_offsets(args: argparse.Namespace) -> int:
    """Move stored offsets that lie outside the topic's log."""
    from worker.stream.offsets import reset_offsets as move

    moved = move(load(Settings), args.to, set(args.partition) if args.partition else None)
    for entry in moved:
        print(f"partition {entry.partition}: stored offset {entry.before} -> {entry.after} ({args.to})")
    if not moved:
        print("no stored offset lies outside the topic's log: nothing moved")
    return 0


def _add_reset_offsets(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reset-offsets",
        help="after the broker lost data: move stored offsets that lie outside the log",
        description="When a worker stops with 'the stored offsets are outside the topic's log' (the broker's data "
        "was wiped, the topic re-created, or retention removed records not applied yet), the state in Redis no "
        "longer matches the log. Either re-bootstrap and replay, or accept the gap with this command: it moves each "
        "such partition's stored offset to the log's end (or start), fences any worker still holding it, and marks "
        "the move as deliberate. Records between are not applied. Settings: SEG_KAFKA__*, SEG_REDIS__*, SEG_TOPICS__*.",
    )
    parser.add_argument("--to", choices=["log-end", "log-start"], required=True, help="where to move them")
    parser.add_argument(
        "--partition", type=int, action="append", help="move this partition whatever its offset (repeatable)"
    )
    parser.set_defaults(command=reset_offsets)


def monitor(args: argparse.Namespace) -> int:
    """Run the drift monitor service."""
    from worker.drift import DriftSettings
    from worker.drift_service.service import DriftMonitor
    from worker.drift_service.settings import MonitorSettings
    from worker.refresh.settings import RefreshSettings

    refresh_options = load(RefreshSettings, **({"policy": args.policy} if args.policy else {}))
    service = DriftMonitor(load(Settings), load(MonitorSettings), load(DriftSettings), refresh_options)
    service.run(until_caught_up=args.until_caught_up)
    print(json.dumps({"alerts_published": service.published, "refreshes": service.refreshes}))
    return 0


def _add_monitor(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "monitor",
        help="run the drift monitor: every worker's observations in, drift incidents out",
        description="Consume the workers' drift observations (topic SEG_TOPICS__DRIFT_OBSERVATIONS, one "
        "partition: one active monitor, others stand by), evaluate the drift monitors (SEG_DRIFT_*) against the "
        "live model's references and publish incidents (open/update/closed) on the drift-alerts topic; recent "
        "alerts and open incidents are kept in Redis (python -m worker alerts --recent N / --open). With "
        "policy refresh (SEG_REFRESH_POLICY or --policy) an opened incident also refits the model.",
    )
    parser.add_argument("--policy", choices=["alert-only", "refresh"], help="override SEG_REFRESH_POLICY")
    parser.add_argument(
        "--until-caught-up", action="store_true", help="exit once every observation published so far is evaluated"
    )
    parser.set_defaults(command=monitor)


def refresh(args: argparse.Namespace) -> int:
    """Refit the live model now."""
    from datetime import datetime

    from shared.redis_client import connect
    from shared.state.layout import stream_clock
    from worker.refresh.refit import refit
    from worker.refresh.settings import RefreshSettings

    client, keys = connect(load(Settings))
    cutoff = client.get(keys.cutoff)
    as_of = args.as_of or stream_clock(client, keys) or (datetime.fromisoformat(cutoff) if cutoff else None)
    if as_of is None:
        raise SegmentationError("no event time to refit at: give --as-of, or bootstrap and run the worker first")
    result = refit(client, keys, as_of, load(RefreshSettings))
    print(
        f"model v{result.previous.version} -> v{result.snapshot.version} on {result.snapshot.customers:,} customers: "
        f"ids kept {result.kept}, new {result.created}, retired {result.retired}. Running workers switch at their "
        "next batch (or within SEG_WORKER_MODEL_CHECK_S when idle) and publish model_refresh changes."
    )
    return 0


def _add_refresh(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "refresh",
        help="refit k-means on every customer's current features and install model v+1",
        description="Refit the live model (same scaler and k, k-means++ with SEG_REFRESH_N_INIT restarts) on "
        "every customer's features as of the latest event time the stream reached, keep the ids of segments the "
        "Hungarian matching pairs within SEG_REFRESH_MATCH_THRESHOLD, give new clusters new ids (retired ids are "
        "never reused) and switch model:current atomically. Workers then re-score and publish one model_refresh "
        "change per customer whose segment changed.",
    )
    parser.add_argument(
        "--as-of",
        type=iso_datetime,
        help="event time of the features (default: the latest event time the stream reached)",
    )
    parser.set_defaults(command=refresh)


# The consumer tools: name -> (help, description); each is ``worker.tools.{name}`` with
# ``add_arguments(parser)`` and ``run(settings, args)``, imported only when used.
TOOLS: dict[str, tuple[str, str]] = {
    "changes": (
        "follow segment changes live (table or JSON lines)",
        "Print segment changes as they are published (from now, or --from-beginning), each "
        "(customer, sequence) once. Ends at --max N events or after --timeout S quiet seconds, or with Ctrl-C. "
        "Kafka and topic names come from SEG_KAFKA__* and SEG_TOPICS__*.",
    ),
    "alerts": (
        "follow drift alerts live (table or JSON lines)",
        "Print drift alerts (incident open/update/closed) as they are published (from now, or "
        "--from-beginning), each alert_id once. Ends at --max N alerts or after --timeout S quiet seconds.",
    ),
    "segments": (
        "segment sizes, shares and profiles of the live model",
        "Sizes (member counts in model:stats) and median profiles (from the live model snapshot) "
        "of every segment. Redis from SEG_REDIS__*.",
    ),
    "customer": (
        "one customer's aggregates, features, segment and recent changes",
        "Aggregates, features (as of the stored event time), assigned and published segment of "
        "one customer from Redis, and the last segment changes from the topic (only the customer's partition "
        "is read; --changes 0 skips the topic).",
    ),
    "models": (
        "model versions in Redis: created, k, training window, quality, which is live",
        "Every model:v{n} under the Redis prefix, oldest first; the live one (model:current) is marked with *.",
    ),
    "recommend": (
        "top products of a customer's segment that the customer has not bought",
        "The products with the most net units (purchases minus returns) among the customers of this "
        "customer's published segment (the sorted set segment:{id}:products the worker keeps), leaving out "
        "every product the customer has bought or returned and those with no positive net units. Ties: stock "
        "code descending. Nothing while the customer has no published segment. Redis from SEG_REDIS__*.",
    ),
}


def _tool_command(name: str) -> Command:
    """Run the tool ``name`` with the settings of the environment."""

    def command(args: argparse.Namespace) -> int:
        return importlib.import_module(f"worker.tools.{name}").run(load(Settings), args)

    return command


def _add_tools(subparsers: argparse._SubParsersAction) -> None:
    for name, (summary, description) in TOOLS.items():
        parser = subparsers.add_parser(name, help=summary, description=description)
        importlib.import_module(f"worker.tools.{name}").add_arguments(parser)
        parser.set_defaults(command=_tool_command(name))


def report(args: argparse.Namespace) -> int:
    """Write the HTML report."""
    from worker.report.gather import gather
    from worker.report.page import write

    path = write(gather(load(Settings)), args.out)
    print(f"report written to {path.resolve()}")
    return 0


def _add_report(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report: profiles, sizes over time, transitions, drift, products",
        description="Read the whole segment-change and drift-alert topics (each event once) and the live state "
        "in Redis, and write one HTML file with inline SVG charts (no network needed to view it): segment "
        "profiles, published segment sizes over event time (weekly), the segment-transition matrix, drift "
        "incidents per monitor, and the top products per segment. Sections without data say so. Settings: "
        "SEG_KAFKA__*, SEG_REDIS__*, SEG_TOPICS__*.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("out/report.html"),
        metavar="FILE",
        help="where to write (default out/report.html)",
    )
    parser.set_defaults(command=report)


def api(args: argparse.Namespace) -> int:
    """Serve the HTTP API and the dashboard."""
    from worker.api.server import serve
    from worker.api.settings import ApiSettings

    overrides = {name: getattr(args, name) for name in ("host", "port") if getattr(args, name) is not None}
    serve(load(Settings), load(ApiSettings, **overrides))
    return 0


def _add_api(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "api",
        help="serve the read-only HTTP API and the live dashboard",
        description="Serve GET /customers/{id}, /segments, /segments/history, /models, /models/{version}, "
        "/incidents, /incidents/{id}, /progress, /changes/stream (server-sent events), /healthz, /readyz, the "
        "OpenAPI schema at /openapi.json (docs at /docs) and the dashboard at /. Reads only. Settings: "
        "SEG_API_HOST (default 127.0.0.1), SEG_API_PORT (8000), SEG_API_AUTH (auto: a bearer token is required "
        "unless the host is loopback), SEG_API_TOKEN, plus SEG_KAFKA__*, SEG_REDIS__*, SEG_TOPICS__*.",
    )
    parser.add_argument("--host", help="address to bind (default SEG_API_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default SEG_API_PORT or 8000)")
    parser.set_defaults(command=api)


def build_parser(prog: str = "live-segments") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Streaming customer segmentation: replay invoices to Kafka, fit the first model, run the "
        "workers and the drift monitor, and read what they produce. Settings come from SEG_* environment "
        "variables (see README); `COMMAND --help` explains each command.",
    )
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    add_producer_commands(subparsers)
    _add_bootstrap(subparsers)
    _add_run(subparsers)
    _add_reset_offsets(subparsers)
    _add_monitor(subparsers)
    _add_refresh(subparsers)
    _add_tools(subparsers)
    _add_report(subparsers)
    _add_api(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "live-segments") -> int:
    """Run one command; returns the process exit code."""
    args = build_parser(prog).parse_args(argv)
    configure_logging()
    command: Command = args.command
    try:
        return command(args)
    except SegmentationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
