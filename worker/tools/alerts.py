"""``alerts``: follow the drift-alerts topic, one line per incident update (repeats by ``alert_id`` once)."""

from __future__ import annotations

import argparse

from shared.contracts.drift_alert import DriftAlert
from shared.settings import Settings
from worker.tools.follow import Feed, add_follow_arguments, follow

FEED: Feed[DriftAlert] = Feed(
    contract=DriftAlert,
    identity=lambda alert: alert.alert_id,
    columns=(
        ("window end", 19),
        ("state", 6),
        ("severity", 8),
        ("monitor", 18),
        ("statistic", 22),
        ("value / threshold", 19),
        ("incident", 14),
        ("suggested action", 0),
    ),
    row=lambda alert: (
        alert.window.end.isoformat(sep=" ", timespec="seconds"),
        alert.state,
        alert.severity,
        alert.monitor,
        f"{alert.method}:{alert.statistic}",
        f"{alert.value:.3g} / {alert.threshold:.3g}",
        alert.incident_id,
        alert.suggested_action,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--monitor", metavar="NAME", help="only alerts of this monitor")
    add_follow_arguments(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Follow until ``--max`` or ``--timeout`` (or Ctrl-C)."""
    follow(
        settings.kafka,
        settings.topics.drift_alerts,
        FEED,
        lambda alert: args.monitor is None or alert.monitor == args.monitor,
        args,
    )
    return 0
