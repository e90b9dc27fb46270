"""``alerts``: follow the drift-alerts topic, one line per incident update (repeats by ``alert_id`` once).

``--recent N`` and ``--open`` read what the drift monitor keeps in Redis instead
(no topic needed): the latest alerts, or the latest alert of each open incident.
An incident may hold several monitor families; ``families in alarm`` lists those
still above their closing level, and ``--monitor NAME`` keeps the alerts of every
incident that family contributes to.
"""

from __future__ import annotations

import argparse

from shared.contracts.drift_alert import DriftAlert
from shared.redis_client import connect
from shared.settings import Settings
from worker.queries import state
from worker.queries.plan import run as run_query
from worker.tools.follow import Feed, add_follow_arguments, follow, header, render

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
        ("incident", 18),
        ("families in alarm", 36),
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
        "+".join(c.monitor for c in alert.contributors if c.active) or "-",
        alert.suggested_action,
    ),
)


def concerns(alert: DriftAlert, monitor: str | None) -> bool:
    """Whether ``alert`` belongs to ``monitor`` (None: any): it sent it, or contributes to its incident."""
    return monitor is None or alert.monitor == monitor or any(c.monitor == monitor for c in alert.contributors)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--monitor", metavar="NAME", help="only alerts of incidents this monitor family is part of")
    stored = parser.add_mutually_exclusive_group()
    stored.add_argument("--recent", type=int, metavar="N", help="print the N latest alerts kept in Redis, then exit")
    stored.add_argument("--open", action="store_true", help="print the open incidents kept in Redis, then exit")
    add_follow_arguments(parser)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Follow until ``--max`` or ``--timeout`` (or Ctrl-C); or print what Redis keeps and exit."""
    if args.recent is not None or args.open:
        client, keys = connect(settings)
        query = state.open_incident_alerts(keys) if args.open else state.recent_alerts(keys, args.recent)
        stored = run_query(client, query)
        if not args.json:
            print(header(FEED))
        for alert in stored:
            if concerns(alert, args.monitor):
                print(render(FEED, alert, args.json))
        return 0
    follow(
        settings.kafka,
        settings.topics.drift_alerts,
        FEED,
        lambda alert: concerns(alert, args.monitor),
        args,
    )
    return 0
