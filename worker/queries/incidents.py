"""Drift alerts folded into incidents: families, statistics against thresholds, suggested action.

Pure functions over :class:`DriftAlert`, so the fold is tested without services.
An incident is open while the drift monitor holds it in ``drift:incidents``
(it removes an incident there when it closes); its alerts are those among the
recent ones kept in ``drift:alerts`` plus the latest one of each open incident.
Each ``alert_id`` counts once.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.contracts.drift_alert import DriftAlert
from worker.queries.views import FamilyView, IncidentView, StatisticPoint


def fold_incidents(alerts: Iterable[DriftAlert], open_ids: set[str]) -> list[IncidentView]:
    """One view per incident id, the most recently updated first."""
    unique = {alert.alert_id: alert for alert in alerts}
    grouped: dict[str, list[DriftAlert]] = {}
    for alert in sorted(unique.values(), key=lambda a: (a.window.end, a.alert_id)):
        grouped.setdefault(alert.incident_id, []).append(alert)
    views = [_incident(group, group[0].incident_id in open_ids) for group in grouped.values()]
    return sorted(views, key=lambda view: (view.updated_at, view.incident_id), reverse=True)


def _incident(alerts: list[DriftAlert], is_open: bool) -> IncidentView:
    last = alerts[-1]
    latest_of = {alert.monitor: alert for alert in alerts}
    families = [
        FamilyView(
            monitor=c.monitor,
            method=c.method,
            statistic=c.statistic,
            joined=c.joined,
            active=c.active,
            value=latest_of[c.monitor].value if c.monitor in latest_of else None,
            threshold=latest_of[c.monitor].threshold if c.monitor in latest_of else None,
        )
        for c in last.contributors
    ]
    if not families:  # alerts from before incidents had contributors
        families = [
            FamilyView(
                monitor=a.monitor,
                method=a.method,
                statistic=a.statistic,
                joined=alerts[0].window.end,
                active=is_open,
                value=a.value,
                threshold=a.threshold,
            )
            for a in latest_of.values()
        ]
    opened = [a.window.end for a in alerts if a.state == "open"]
    return IncidentView(
        incident_id=last.incident_id,
        state="open" if is_open else "closed",
        severity=last.severity,
        opened_at=opened[0] if opened else min([alerts[0].window.end] + [f.joined for f in families]),
        updated_at=last.window.end,
        closed_at=None if is_open or last.state != "closed" else last.window.end,
        model_version=last.model_version,
        families=families,
        history=[
            StatisticPoint(
                at=a.window.end,
                monitor=a.monitor,
                statistic=f"{a.method}:{a.statistic}",
                value=a.value,
                threshold=a.threshold,
                state=a.state,
                severity=a.severity,
            )
            for a in alerts
        ],
        suggested_action=last.suggested_action,
        alerts=len(alerts),
    )
