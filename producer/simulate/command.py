"""``live-segments simulate`` (or ``python -m producer simulate``): its parser block and the function it runs."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from producer.simulate.archetypes import ARCHETYPES
from producer.simulate.drift import DriftEpisode, parse_drift
from shared.cli_types import iso_datetime, positive_int


def _drift(text: str) -> DriftEpisode:
    try:
        return parse_drift(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``simulate`` subcommand's options."""
    names = ", ".join(a.name for a in ARCHETYPES)
    parser = commands.add_parser(
        "simulate",
        help="write a synthetic Online Retail CSV with known customer archetypes",
        description=f"Generate an Online-Retail-like CSV (same header and formats) from customer archetypes "
        f"({names}) with seasonality, guest checkouts (~25% of lines), cancellations, POST and M lines, and "
        "optional drift. Writes FILE and FILE.truth.json (customer -> archetype, drift episodes). The same "
        "arguments always give byte-identical files.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file, .csv or .csv.xz")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--customers", type=positive_int, default=4000, help="number of customers (default 4000)")
    parser.add_argument(
        "--start", type=iso_datetime, default=datetime(2010, 12, 1), help="first day (default 2010-12-01)"
    )
    parser.add_argument("--days", type=positive_int, default=365, help="simulated days, at least 28 (default 365)")
    parser.add_argument("--products", type=positive_int, default=300, help="catalogue size, at most 300 (default 300)")
    parser.add_argument(
        "--drift",
        type=_drift,
        action="append",
        default=[],
        metavar="KIND:DATE:MAGNITUDE",
        help="inject drift (repeatable): order-value-shift:2011-09-01:1.0 raises log order value by 1.0 sigma "
        "from that time; churn:2011-09-01:0.3 makes 30%% of loyal customers stop buying then",
    )
    parser.set_defaults(command=run)


def run(args: argparse.Namespace) -> int:
    """Simulate as asked and print what was written; a bad output name or size exits 2."""
    from producer.simulate.simulation import SimulationConfig, simulate  # pandas: only when simulating

    config = SimulationConfig(
        out=args.out,
        customers=args.customers,
        start=args.start,
        days=args.days,
        seed=args.seed,
        products=args.products,
        drift=tuple(args.drift),
    )
    started = time.perf_counter()
    try:
        result = simulate(config)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {result.lines:,} lines for {result.customers:,} customers to {result.path} "
        f"in {time.perf_counter() - started:.1f} s; ground truth in {result.truth_path}"
    )
    return 0
