"""Reading what the report needs: the segment-change and drift-alert topics whole, and Redis now.

Why a whole-topic read: sizes over time and transitions are facts of every
published change, and consumers of the topic (CRM, analysts) see exactly these.
Redis adds what the topics do not carry: the live model (names, profiles, sizes),
each customer's published segment, and the top products per segment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

import redis
from pydantic import BaseModel

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.segment_change import SegmentChange
from shared.exceptions import MissingTopicError
from shared.redis_client import connect
from shared.settings import KafkaSettings, Settings
from shared.state.customers import iter_fields
from shared.state.keys import Keys
from shared.state.model_stats import live_stats
from shared.state.model_store import require_current
from shared.state.popularity import top_products
from shared.topic_reader import ReadOptions, read
from worker.report import history
from worker.report.content import ReportData, SegmentProfile

TOP_PRODUCTS = 10
REDIS_BATCH = 5_000

WHOLE_TOPIC = ReadOptions(from_beginning=True, to_end=True)

Event = TypeVar("Event", bound=BaseModel)


def read_topic(settings: KafkaSettings, topic: str, contract: type[Event]) -> list[Event]:
    """Every message of ``topic`` as ``contract``, from the beginning to the end; none if it does not exist."""
    try:
        return [contract.model_validate_json(record.value) for record in read(settings, topic, WHOLE_TOPIC)]
    except MissingTopicError:
        return []


def published_segments(client: redis.Redis, keys: Keys) -> dict[str, int | None]:
    """Every customer's published segment id (None while it has none)."""
    return {cid: int(value) if value else None for cid, _, (value,) in iter_fields(client, keys, ("published",))}


def segments_top_products(
    client: redis.Redis, keys: Keys, segment_ids: list[int]
) -> dict[int, list[tuple[str, float]]]:
    """The most-bought stock codes (net units) of each segment that has any."""
    out = {}
    for segment in segment_ids:
        rows = top_products(client, keys, segment, TOP_PRODUCTS)
        if rows:
            out[segment] = [(code, float(units)) for code, units in rows]
    return out


def gather(settings: Settings) -> ReportData:
    """Read the topics and Redis once and compute every figure of the report."""
    client, keys = connect(settings)
    snapshot = require_current(client, keys)
    counts = live_stats(client, keys, snapshot).counts
    changes = history.distinct_changes(read_topic(settings.kafka, settings.topics.segment_changes, SegmentChange))
    alerts = read_topic(settings.kafka, settings.topics.drift_alerts, DriftAlert)
    names = {ref.id: ref.name for c in changes for ref in (c.previous, c.current) if ref is not None and ref.name}
    names |= {segment.id: segment.name for segment in snapshot.segments}
    return ReportData(
        generated_at=datetime.now(UTC),
        model_version=snapshot.version,
        trained_until=snapshot.training_window[1],
        segments=[
            SegmentProfile(id=s.id, name=s.name, size=int(count), profile=s.profile)
            for s, count in zip(snapshot.segments, counts, strict=True)
        ],
        names=names,
        changes=len(changes),
        sizes=history.size_history(changes, published_segments(client, keys)),
        transitions=history.transitions(changes),
        incidents=history.incidents(alerts),
        products=segments_top_products(client, keys, sorted(names)),
    )
