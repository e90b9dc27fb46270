"""Reading what the report needs: the segment-change and drift-alert topics whole, and Redis now.

Why a whole-topic read: sizes over time and transitions are facts of every
published change, and consumers of the topic (CRM, analysts) see exactly these.
Redis adds what the topics do not carry: the live model (names, profiles, sizes),
each customer's published segment, and the top products per segment, read through
:mod:`worker.queries.state` like the tools and the API.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.segment_change import SegmentChange
from shared.exceptions import MissingTopicError
from shared.redis_client import connect
from shared.settings import KafkaSettings, Settings
from shared.topic_reader import ReadOptions, read
from worker.queries import history, state
from worker.queries.plan import run as run_query
from worker.report.content import ReportData, SegmentProfile

TOP_PRODUCTS = 10

WHOLE_TOPIC = ReadOptions(from_beginning=True, to_end=True)

Event = TypeVar("Event", bound=BaseModel)


def read_topic(settings: KafkaSettings, topic: str, contract: type[Event]) -> list[Event]:
    """Every message of ``topic`` as ``contract``, from the beginning to the end; none if it does not exist."""
    try:
        return [contract.model_validate_json(record.value) for record in read(settings, topic, WHOLE_TOPIC)]
    except MissingTopicError:
        return []


def gather(settings: Settings) -> ReportData:
    """Read the topics and Redis once and compute every figure of the report."""
    client, keys = connect(settings)
    snapshot = run_query(client, state.Snapshots().require_current(keys))
    counts = run_query(client, state.live_counts_query(keys, snapshot))
    changes = history.distinct_changes(read_topic(settings.kafka, settings.topics.segment_changes, SegmentChange))
    alerts = read_topic(settings.kafka, settings.topics.drift_alerts, DriftAlert)
    names = {ref.id: ref.name for c in changes for ref in (c.previous, c.current) if ref is not None and ref.name}
    names |= {segment.id: segment.name for segment in snapshot.segments}
    products = run_query(client, state.top_products(keys, sorted(names), TOP_PRODUCTS))
    return ReportData(
        generated_at=datetime.now(UTC),
        model_version=snapshot.version,
        trained_until=snapshot.training_window[1],
        segments=[
            SegmentProfile(id=s.id, name=s.name, size=count, profile=s.profile, description=s.description)
            for s, count in zip(snapshot.segments, counts, strict=True)
        ],
        names=names,
        changes=len(changes),
        sizes=history.size_history(changes, run_query(client, state.published_segments(keys))),
        transitions=history.transitions(changes),
        incidents=history.incidents(alerts),
        products={
            segment: [(p.stock_code, float(p.units)) for p in rows] for segment, rows in products.items() if rows
        },
    )
