"""Every read of the system's state in Redis, as queries (see :mod:`worker.queries.plan`).

Key names come from :class:`shared.state.keys.Keys`, record fields and statistics
from :mod:`shared.state`; this module decides which keys a view needs, reads them
in as few round trips as it can, and builds the view. When the keyspace changes,
this is the module to port for the tools, the report and the API alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from shared.contracts.drift_alert import DriftAlert
from shared.contracts.model_snapshot import ModelSnapshot
from shared.exceptions import ModelError, UnknownCustomerError, UnknownIncidentError, UnknownModelVersionError
from shared.features.aggregates import CustomerAggregates
from shared.partitioner import partition_of
from shared.state.customer_record import CustomerRecord
from shared.state.customers import units_of
from shared.state.keys import Keys
from shared.state.layout import partitions_in
from shared.state.model_stats import combine
from shared.state.model_store import NO_MODEL_HINT
from worker.queries.incidents import fold_incidents
from worker.queries.plan import Query, call
from worker.queries.popularity import PopularityCache
from worker.queries.views import (
    FEATURE_UNITS,
    CustomerSummary,
    CustomerView,
    IncidentView,
    Lineage,
    ModelSegment,
    ModelView,
    ProductUnits,
    Recommendation,
    SegmentLabel,
    SegmentsView,
    SegmentView,
)

CHUNK = 5_000
VERSION_PROBE = 8  # model versions above the live one asked per round trip
UNKNOWN_NAME = "?"


class Snapshots:
    """Model versions, each parsed once: a stored ``model:v{n}`` never changes, only ``model:current`` moves."""

    def __init__(self) -> None:
        self._parsed: dict[int, ModelSnapshot] = {}

    def version(self, keys: Keys, version: int) -> Query[ModelSnapshot | None]:
        if version not in self._parsed:
            (text,) = yield [call("get", keys.model(version))]
            if text is None:
                return None
            self._parsed[version] = ModelSnapshot.model_validate_json(text)
        return self._parsed[version]

    def current(self, keys: Keys) -> Query[ModelSnapshot | None]:
        (version,) = yield [call("get", keys.model_current)]
        return None if version is None else (yield from self.version(keys, int(version)))

    def require_current(self, keys: Keys) -> Query[ModelSnapshot]:
        snapshot = yield from self.current(keys)
        if snapshot is None:
            raise ModelError(f"no live model under Redis prefix {keys.prefix!r}: {NO_MODEL_HINT}")
        return snapshot


def partitions(keys: Keys) -> Query[int]:
    """The number of partitions the state is laid out for (one round trip)."""
    (meta,) = yield [call("get", keys.bootstrap_meta)]
    return partitions_in(meta, keys)


def label(snapshot: ModelSnapshot | None, segment_id: int | None) -> SegmentLabel | None:
    """The segment's name and description in ``snapshot`` (``?`` when the model does not hold the id)."""
    if segment_id is None:
        return None
    for segment in snapshot.segments if snapshot else ():
        if segment.id == segment_id:
            return SegmentLabel(id=segment.id, name=segment.name, description=segment.description)
    return SegmentLabel(id=segment_id, name=UNKNOWN_NAME)


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def summary(aggregates: CustomerAggregates) -> CustomerSummary:
    """The aggregates a person asks about first."""
    return CustomerSummary(
        country=aggregates.country,
        invoices=aggregates.invoices,
        cancelled_invoices=aggregates.cancel_invoices,
        purchase_lines=aggregates.purchase_lines,
        units=aggregates.units,
        distinct_products=aggregates.products,
        gross_spend=round(aggregates.gross_spend, 2),
        cancelled_amount=round(aggregates.cancel_amount, 2),
        net_spend=round(aggregates.net_spend, 2),
        first_purchase=aggregates.first_purchase,
        last_purchase=aggregates.last_purchase,
    )


def customer(
    keys: Keys, snapshots: Snapshots, customer_id: str, top: int = 10, popularity: PopularityCache | None = None
) -> Query[CustomerView]:
    """One customer's record, named by the live model, with its ``top`` recommendations.

    A recommendation is a product of the customer's published segment with positive
    net units (summed over the partitions' shares) that the customer never bought or
    returned, highest units first (ties: stock code descending): the rule of
    :func:`shared.state.recommendations.recommend`. Three round trips (four the first
    time a model version is seen). ``last_change`` is left to the caller: it lives on
    the segment-changes topic.
    """
    count = yield from partitions(keys)
    partition = partition_of(customer_id, count)
    record, version = yield [
        call("hgetall", keys.customer(partition, customer_id)),
        call("get", keys.model_current),
    ]
    if not record:
        raise UnknownCustomerError(customer_id, keys.prefix)
    snapshot = None if version is None else (yield from snapshots.version(keys, int(version)))
    stored = CustomerRecord.from_fields(customer_id, record)
    aggregates = stored.aggregates
    published = _int(record["published"])
    recommendations: list[Recommendation] = []
    if published is not None and top > 0:
        popularity = popularity or PopularityCache()
        rankings = popularity.fresh([published])
        missing = [] if rankings else [published]
        members, *shares = yield [
            call("hgetall", keys.members(partition, customer_id)),
            *popularity.reads(keys, count, missing),
        ]
        rankings |= popularity.keep(missing, shares, count)
        ranked = rankings[published].top(top, exclude=units_of(members))
        recommendations = [Recommendation(stock_code=code, units=units) for code, units in ranked]
    return CustomerView(
        customer_id=customer_id,
        model_version=None if snapshot is None else snapshot.version,
        published=label(snapshot, published),
        assigned=label(snapshot, _int(record["segment"])),
        features=stored.features,
        features_as_of=_time(record["as_of"]),
        sequence=int(record["seq"] or 0),
        published_at=_time(record["published_at"]),
        aggregates=summary(aggregates),
        recommendations=recommendations,
    )


def live_counts_query(keys: Keys, snapshot: ModelSnapshot) -> Query[list[int]]:
    """Live members per segment (``snapshot.segments`` order): :func:`shared.state.model_stats.live_stats`'s rule."""
    count = yield from partitions(keys)
    *shares, own = yield [call("hgetall", keys.stats(p)) for p in range(count)] + [call("hgetall", keys.model_stats)]
    return [int(n) for n in combine(shares, own, snapshot).counts]


def top_products(
    keys: Keys, segment_ids: list[int], n: int, popularity: PopularityCache | None = None
) -> Query[dict[int, list[ProductUnits]]]:
    """The ``n`` stock codes with the most net units of each segment (all segments asked, empty ones too)."""
    popularity = popularity or PopularityCache()
    count = yield from partitions(keys)
    rankings = popularity.fresh(segment_ids)
    missing = [segment for segment in segment_ids if segment not in rankings]
    if missing:
        rankings |= popularity.keep(missing, (yield popularity.reads(keys, count, missing)), count)
    return {
        segment: [ProductUnits(stock_code=code, units=units) for code, units in rankings[segment].top(n)]
        for segment in segment_ids
    }


def segments(
    keys: Keys, snapshots: Snapshots, products: int = 10, popularity: PopularityCache | None = None
) -> Query[SegmentsView]:
    """Every segment of the live model: live size and share, training-time profile, top products."""
    snapshot = yield from snapshots.require_current(keys)
    counts = yield from live_counts_query(keys, snapshot)
    tops = yield from top_products(keys, [segment.id for segment in snapshot.segments], products, popularity)
    total = sum(counts)
    return SegmentsView(
        model_version=snapshot.version,
        customers=total,
        feature_units={name: FEATURE_UNITS.get(name, "") for name in snapshot.feature_names},
        segments=[
            SegmentView(
                id=segment.id,
                name=segment.name,
                description=segment.description,
                size=count,
                share=count / total if total else 0.0,
                profile=segment.profile,
                top_products=tops[segment.id],
            )
            for segment, count in zip(snapshot.segments, counts, strict=True)
        ],
    )


def versions(keys: Keys) -> Query[list[int]]:
    """Version numbers of the stored model snapshots, ascending.

    Why probe above the live one: a version is stored before it is made live, so a
    refresh or bootstrap that stopped in between (or a version stored for later)
    leaves one above it. New versions are numbered upwards from the live one, so
    numbers above it are probed up to the first missing one, ``VERSION_PROBE`` per
    round trip (no SCAN: it works alike on a Redis Cluster).
    """
    (live,) = yield [call("get", keys.model_current)]
    top = int(live) if live is not None else 0
    found: list[int] = []
    numbers = list(range(1, top + VERSION_PROBE + 1))
    while True:
        stored = yield [call("exists", keys.model(number)) for number in numbers]
        for number, there in zip(numbers, stored, strict=True):
            if there:
                found.append(number)
            elif number > top:
                return found
        numbers = list(range(numbers[-1] + 1, numbers[-1] + VERSION_PROBE + 1))


def _model_view(snapshot: ModelSnapshot, live: int | None, parent: ModelSnapshot | None) -> ModelView:
    start, end = snapshot.training_window
    refreshed_from = snapshot.reference.extra.get("refreshed_from")
    ids = {segment.id for segment in snapshot.segments}
    parent_ids = {segment.id for segment in parent.segments} if parent else set()
    return ModelView(
        version=snapshot.version,
        current=snapshot.version == live,
        created_at=snapshot.created_at,
        k=snapshot.k,
        training_start=start,
        training_end=end,
        customers=snapshot.customers,
        metrics=snapshot.quality,
        k_selection=snapshot.k_selection,
        lineage=Lineage(
            source="bootstrap" if refreshed_from is None else "refresh",
            parent_version=None if refreshed_from is None else int(refreshed_from),
            data_fingerprint=snapshot.data_fingerprint,
            kept_segment_ids=sorted(ids & parent_ids),
            new_segment_ids=sorted(ids - parent_ids),
            retired_segment_ids=snapshot.retired_segment_ids,
        ),
        segments=[
            ModelSegment(id=s.id, name=s.name, description=s.description, size_at_fit=s.count)
            for s in snapshot.segments
        ],
    )


def _parent(snapshot: ModelSnapshot, stored: Mapping[int, ModelSnapshot]) -> ModelSnapshot | None:
    refreshed_from = snapshot.reference.extra.get("refreshed_from")
    return None if refreshed_from is None else stored.get(int(refreshed_from))


def models(keys: Keys, snapshots: Snapshots) -> Query[list[ModelView]]:
    """Every stored model version, oldest first, the live one marked, with its lineage."""
    numbers = yield from versions(keys)
    (live,) = yield [call("get", keys.model_current)]
    stored: dict[int, ModelSnapshot] = {}
    for number in numbers:
        snapshot = yield from snapshots.version(keys, number)
        if snapshot is not None:
            stored[number] = snapshot
    return [_model_view(s, _int(live), _parent(s, stored)) for s in stored.values()]


def model(keys: Keys, snapshots: Snapshots, version: int) -> Query[ModelView]:
    """One stored version with its lineage; :class:`UnknownModelVersionError` when it is not stored."""
    snapshot = (yield from snapshots.version(keys, version)) if version >= 1 else None
    if snapshot is None:
        raise UnknownModelVersionError(version)
    (live,) = yield [call("get", keys.model_current)]
    refreshed_from = snapshot.reference.extra.get("refreshed_from")
    parent = None if refreshed_from is None else (yield from snapshots.version(keys, int(refreshed_from)))
    return _model_view(snapshot, _int(live), parent)


def recent_alerts(keys: Keys, limit: int) -> Query[list[DriftAlert]]:
    """The newest ``limit`` drift alerts the monitor keeps in Redis, newest first."""
    if limit <= 0:
        return []
    (texts,) = yield [call("lrange", keys.drift_alerts, 0, limit - 1)]
    return [DriftAlert.model_validate_json(text) for text in texts]


def open_incident_alerts(keys: Keys) -> Query[list[DriftAlert]]:
    """The latest alert of every open incident."""
    (texts,) = yield [call("hvals", keys.drift_incidents)]
    return [DriftAlert.model_validate_json(text) for text in texts]


def incidents(keys: Keys, state: Literal["open", "all"] = "open") -> Query[list[IncidentView]]:
    """Open incidents, or every incident among the recent alerts kept too; most recently updated first."""
    latest, recent = yield [call("hvals", keys.drift_incidents), call("lrange", keys.drift_alerts, 0, -1)]
    open_alerts = [DriftAlert.model_validate_json(text) for text in latest]
    open_ids = {alert.incident_id for alert in open_alerts}
    alerts = open_alerts + [DriftAlert.model_validate_json(text) for text in recent]
    folded = fold_incidents(alerts, open_ids)
    return folded if state == "all" else [view for view in folded if view.state == "open"]


def incident(keys: Keys, incident_id: str) -> Query[IncidentView]:
    """One incident by id; :class:`UnknownIncidentError` when Redis keeps none of its alerts."""
    for view in (yield from incidents(keys, "all")):
        if view.incident_id == incident_id:
            return view
    raise UnknownIncidentError(incident_id)


def applied_offsets(keys: Keys, topic: str) -> Query[tuple[dict[int, int], datetime | None]]:
    """The next offset the workers apply per partition (of the invoices topic), and the latest event time reached."""
    count = yield from partitions(keys)
    checkpoints = yield [call("hmget", keys.checkpoint(p), ["offset", "clock"]) for p in range(count)]
    offsets = {p: int(offset) for p, (offset, _) in enumerate(checkpoints) if offset}
    clocks = [datetime.fromisoformat(clock) for _, clock in checkpoints if clock]
    return offsets, max(clocks) if clocks else None


def published_segments(keys: Keys) -> Query[dict[str, int | None]]:
    """Every customer's published segment id (None while it has none), partition by partition, by chunks."""
    count = yield from partitions(keys)
    published: dict[str, int | None] = {}
    for partition in range(count):
        (members,) = yield [call("smembers", keys.customers(partition))]
        customers = sorted(members)
        for start in range(0, len(customers), CHUNK):
            part = customers[start : start + CHUNK]
            values = yield [call("hget", keys.customer(partition, c), "published") for c in part]
            published.update((c, _int(v)) for c, v in zip(part, values, strict=True))
    return published
