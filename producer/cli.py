"""Command line of the producer: ``replay`` and ``simulate``.

The same commands are part of ``live-segments`` (see :mod:`worker.cli`), which adds
them with :func:`add_commands`; ``python -m producer`` has only these two.

Exit codes: 0 done, 2 configuration or input error (one-line message, no
traceback; also refused credentials and a checkpoint that belongs to another
cluster, topic or partition count), 3 broker unreachable at the start, 130
interrupted by SIGINT, 143 by SIGTERM (in both cases after waiting at most
SEG_PRODUCER_STOP_FLUSH_S for outstanding acks and saving the checkpoint, so a
rerun resumes). A broker outage during the run is waited out with backoff.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from producer.settings import ProducerSettings
from producer.simulate import command as simulate_command
from shared.cli_types import iso_datetime, positive_float, positive_int
from shared.exceptions import ConfigError, InputError, ServiceUnavailableError
from shared.logs import configure_logging
from shared.settings import Settings, load

log = logging.getLogger("producer")

EXIT_OK, EXIT_INPUT, EXIT_BROKER = 0, 2, 3


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``replay`` and ``simulate``; each sets ``command`` to the function that runs it."""
    run = commands.add_parser(
        "replay",
        help="replay a file in event-time order",
        description="Replay FILE (.csv, .csv.gz/.xz/.bz2, .xlsx, .parquet; Online Retail or Online Retail II "
        "columns) to the invoices topic in event-time order. Invalid rows go to the dead-letter topic. "
        "The run is resumable: a checkpoint records the acknowledged prefix and the cluster, topic ids and "
        "partition counts it went to; a rerun with the same arguments continues after it, starts over when "
        "the topics are empty, and refuses (exit 2) when they belong to another cluster, were re-created, lost "
        "data or changed partition count. A broker outage during the run is waited out (resending from the "
        "acknowledged prefix). Exit codes: 0 done, 2 bad config/input/credentials/checkpoint, 3 broker "
        "unreachable at the start, 130/143 interrupted (checkpoint saved).",
    )
    run.add_argument("file", type=Path, metavar="FILE", help="input file")
    pace = run.add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=positive_float,
        metavar="N",
        help="event-time compression: N event-seconds per wall second (86400 = one event-day per second)",
    )
    pace.add_argument("--max-speed", action="store_true", help="send as fast as the broker accepts (the default)")
    run.add_argument("--start", type=iso_datetime, metavar="DATE", help="first event time to replay (inclusive, ISO)")
    run.add_argument("--end", type=iso_datetime, metavar="DATE", help="event time to stop before (exclusive, ISO)")
    run.add_argument(
        "--limit", type=positive_int, metavar="N", help="replay at most N rows of the window (valid + invalid)"
    )
    run.add_argument(
        "--partitions",
        type=positive_int,
        metavar="N",
        help="partitions for topics this run creates (default SEG_TOPICS__PARTITIONS); existing topics are kept",
    )
    run.add_argument("--topic", metavar="NAME", help="invoices topic to publish to (default SEG_TOPICS__INVOICES)")
    run.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="checkpoint file (default: one per input and selection under SEG_PRODUCER_CHECKPOINT_DIR)",
    )
    run.add_argument(
        "--from-scratch",
        action="store_true",
        help="ignore an existing checkpoint and replay from the first row (rows already on the topic are "
        "repeated; consumers drop them by event id)",
    )
    run.add_argument("--encoding", metavar="NAME", help="text encoding of CSV input (default utf-8; e.g. latin-1)")
    run.add_argument("--quiet", action="store_true", help="no progress bar and only warnings in the log")
    run.set_defaults(command=replay_command)
    simulate_command.add_parser(commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Publish Online Retail invoice lines to Kafka. Connection and topic names come from "
        "SEG_KAFKA__* and SEG_TOPICS__* variables; tuning from SEG_PRODUCER_* (see producer/settings.py).",
    )
    add_commands(parser.add_subparsers(title="commands", required=True, metavar="COMMAND"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.command(args)
    return code


def replay_command(args: argparse.Namespace) -> int:
    """Replay as asked; on SIGINT/SIGTERM flush, save the checkpoint and exit 128 + the signal."""
    from producer.replay import ReplayOptions, replay  # pandas: only when replaying

    configure_logging(level=logging.WARNING if args.quiet else logging.INFO)
    stop = threading.Event()
    received: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second signal ends the process at once

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    options = ReplayOptions(
        speed=args.speed,
        start=args.start,
        end=args.end,
        limit=args.limit,
        partitions=args.partitions,
        topic=args.topic,
        checkpoint=args.checkpoint,
        from_scratch=args.from_scratch,
        encoding=args.encoding,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    try:
        summary = replay(args.file, load(Settings), options, load(ProducerSettings), stop)
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ServiceUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BROKER
    for line in summary.lines():
        print(line)
    return 128 + received[0] if received else EXIT_OK
