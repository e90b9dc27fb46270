"""From published events to the report's figures: sizes over event time, transitions, incidents.

Pure functions over contract objects, so they are tested without a broker. Both
topics are delivered at least once: repeats are dropped by each event's identity
((customer, sequence) for changes, ``alert_id`` for alerts) before anything is counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.segment_change import SegmentChange

SEVERITY_ORDER = ("info", "warning", "critical")

NEW = None
"""Row key of the transition matrix for a customer's first segment (no previous one)."""


@dataclass(frozen=True)
class SizeHistory:
    """Published members per segment at regular event times (the state after all earlier changes)."""

    times: list[datetime]
    sizes: dict[int, list[int]]

    def at_end(self) -> dict[int, int]:
        """Members per segment after the last change."""
        return {segment: counts[-1] for segment, counts in self.sizes.items() if counts}


@dataclass(frozen=True)
class Transitions:
    """How many published changes went from each previous segment (or :data:`NEW`) to each current one."""

    counts: dict[tuple[int | None, int], int]

    @property
    def sources(self) -> list[int | None]:
        """Row keys: :data:`NEW` first, then segment ids ascending."""
        found = {source for source, _ in self.counts}
        return ([NEW] if NEW in found else []) + sorted(s for s in found if s is not None)

    @property
    def targets(self) -> list[int]:
        return sorted({target for _, target in self.counts})


@dataclass(frozen=True)
class Incident:
    """One drift incident, folded from its open/update/closed alerts."""

    incident_id: str
    monitor: str
    severity: str
    statistic: str
    opened: datetime
    last_seen: datetime
    closed: datetime | None
    alerts: int
    suggested_action: str

    @property
    def end(self) -> datetime:
        """Where the incident's bar ends: its closing, or the last alert while still open."""
        return self.closed or self.last_seen


def distinct_changes(changes: Iterable[SegmentChange]) -> list[SegmentChange]:
    """Each (customer, sequence) once, in event-time order (a customer's own changes by sequence)."""
    unique = {(change.customer_id, change.sequence): change for change in changes}
    return sorted(unique.values(), key=lambda c: (c.event_time, c.customer_id, c.sequence))


def size_history(
    changes: list[SegmentChange], published: Mapping[str, int | None], step: timedelta = timedelta(days=7)
) -> SizeHistory:
    """Published members per segment every ``step`` of event time, from the first change's day on.

    ``changes`` come from :func:`distinct_changes`; ``published`` is every customer's
    published segment now (Redis). A customer starts in the segment it left with its
    first change on the topic (none for a first purchase), or stays in its published
    segment throughout when it never changed. The last sample lies after the last
    change, so it equals ``published`` for every customer the topic knows.
    """
    first_seen: dict[str, SegmentChange] = {}
    for change in changes:
        known = first_seen.get(change.customer_id)
        if known is None or change.sequence < known.sequence:
            first_seen[change.customer_id] = change
    segment_of = {customer: segment for customer, segment in published.items() if customer not in first_seen}
    segment_of |= {c: change.previous.id if change.previous else None for c, change in first_seen.items()}
    if not changes:
        return SizeHistory(times=[], sizes={})
    start = changes[0].event_time.replace(hour=0, minute=0, second=0, microsecond=0)
    samples = int((changes[-1].event_time - start) / step) + 2
    times = [start + i * step for i in range(samples)]
    ids = {s for s in segment_of.values() if s is not None} | {c.current.id for c in changes}
    sizes: dict[int, list[int]] = {segment: [] for segment in sorted(ids)}
    members = Counter(s for s in segment_of.values() if s is not None)
    pending = iter(changes)
    upcoming = next(pending, None)
    for time in times:
        while upcoming is not None and upcoming.event_time < time:
            _move(members, segment_of.get(upcoming.customer_id), upcoming.current.id)
            segment_of[upcoming.customer_id] = upcoming.current.id
            upcoming = next(pending, None)
        for segment, counts in sizes.items():
            counts.append(members[segment])
    return SizeHistory(times=times, sizes=sizes)


def _move(members: Counter[int], source: int | None, target: int) -> None:
    if source is not None:
        members[source] -= 1
    members[target] += 1


def transitions(changes: Iterable[SegmentChange]) -> Transitions:
    """Count previous → current over distinct changes; a first segment counts from ``NEW`` (None)."""
    counted = Counter((c.previous.id if c.previous else None, c.current.id) for c in changes)
    return Transitions(counts=dict(counted))


def incidents(alerts: Iterable[DriftAlert]) -> list[Incident]:
    """One :class:`Incident` per ``incident_id``, oldest first; each ``alert_id`` counted once.

    An incident's time is the end of the event window its alerts were computed over;
    its severity is the highest any of its alerts had.
    """
    unique = {alert.alert_id: alert for alert in alerts}
    grouped: dict[str, list[DriftAlert]] = {}
    for alert in sorted(unique.values(), key=lambda a: a.window.end):
        grouped.setdefault(alert.incident_id, []).append(alert)
    folded = [_incident(group) for group in grouped.values()]
    return sorted(folded, key=lambda incident: (incident.opened, incident.monitor))


def _incident(alerts: list[DriftAlert]) -> Incident:
    """Fold one incident's alerts: closed only if its last alert closed it (an incident may re-open).

    Its monitor names every family that contributed (``a + b``), or the sender's for
    alerts from before incidents had contributors.
    """
    first, last = alerts[0], alerts[-1]
    closed = last.window.end if last.state == "closed" else None
    families = dict.fromkeys(c.monitor for a in alerts for c in a.contributors) or {first.monitor: None}
    return Incident(
        incident_id=first.incident_id,
        monitor=" + ".join(families),
        severity=max((a.severity for a in alerts), key=SEVERITY_ORDER.index),
        statistic=f"{first.method}:{first.statistic}",
        opened=first.window.end,
        last_seen=last.window.end,
        closed=closed,
        alerts=len(alerts),
        suggested_action=last.suggested_action,
    )
