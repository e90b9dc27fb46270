"""What one batch does to state: pure logic between the read and the commit.

The loop reads, this module decides, the committer writes. Keeping the decisions
free of I/O lets tests drive them directly and keeps the hot path visible.

Within a batch, lines are applied in event-time order and cut at each event day
that every owned partition has passed: there the idle customers are swept
(moved to that day's recency and re-assigned), so inactivity is scored at every
day, whatever the batch size.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from shared.contracts.invoice import InvoiceLine
from shared.contracts.segment_change import ChangeReason, SegmentChange, SegmentRef
from shared.features.aggregates import CustomerAggregates, apply_line, classify
from shared.features.vector import FEATURE_NAMES, compute_features
from shared.state.customer_record import CustomerState
from worker.segmentation.popularity import PopularityChanges
from worker.stream.commit import BatchCommit
from worker.stream.model import LocalModel
from worker.stream.observations import ObservationCollector
from worker.stream.scored_index import ScoredIndex

Touched = dict[str, tuple[int, InvoiceLine | None]]

# What a batch rewrites of a customer record, from least to most.
WRITE_SEGMENT, WRITE_SCORE, WRITE_ALL = 0, 1, 2


def _event_time(item: tuple[int, InvoiceLine]) -> datetime:
    return item[1].invoice_date


def _day(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day)


@dataclass
class Change:
    """A segment change to publish on a partition."""

    partition: int
    customer_id: str
    payload: str


@dataclass
class Processor:
    """Applies lines to owned customers, scores them, sweeps idle ones, and gathers the commit."""

    model: LocalModel
    publish_margin: float
    confirm_sweeps: int
    inactivity_dwell: timedelta
    lloyd_passes: int
    cutoff: datetime | None
    customers: dict[str, CustomerState] = field(default_factory=dict)
    index: ScoredIndex = field(default_factory=ScoredIndex)
    partition_of_customer: dict[str, int] = field(default_factory=dict)
    last_sweep_day: datetime | None = None
    sweep_markers: dict[int, datetime] = field(default_factory=dict)
    partition_times: dict[int, datetime] = field(default_factory=dict)
    pending: dict[str, tuple[int, int]] = field(default_factory=dict)
    sweep_seconds: list[float] = field(default_factory=list)  # of the last apply(), for metrics
    observations: ObservationCollector = field(default_factory=ObservationCollector)
    popularity: PopularityChanges = field(default_factory=PopularityChanges)
    _dirty: dict[str, int] = field(default_factory=dict)

    # -- ownership ----------------------------------------------------------------------------
    def _row_of(self, segment: int | None) -> int:
        return -1 if segment is None else self.model.row_of.get(segment, -1)

    def adopt(
        self, customers: dict[str, CustomerState], partition_of: dict[str, int], markers: dict[int, datetime]
    ) -> None:
        """Take ownership of loaded customers (on partition assignment) and rebuild their statistics.

        A customer idle since before its partition's last sweep is counted at its
        vector as of that sweep, exactly as the sweep counted it before the restart.
        """
        for cid, state in customers.items():
            self.customers[cid] = state
            self.partition_of_customer[cid] = partition_of[cid]
            if state.features is not None and state.vector is not None:
                self.index.update(
                    cid,
                    state.aggregates,
                    state.features,
                    state.vector,
                    self._row_of(state.segment),
                    self._row_of(state.published),
                    partition_of[cid],
                )
        for partition, marker in markers.items():
            stale = [
                self.index.row[cid]
                for cid, state in customers.items()
                if cid in self.index.row and partition_of[cid] == partition and state.as_of < marker
            ]
            if stale:
                self.index.vectors[stale] = self.model.vectors(self.index.features_at(marker)[stale])
        self.sweep_markers.update(markers)
        self._rebuild(set(partition_of.values()) | set(markers))

    def _rebuild(self, partitions: Iterable[int]) -> None:
        """Recompute owned partitions' statistics from their customers' counted vectors."""
        for partition, (sums, counts) in self.index.statistics(partitions, self.model.k).items():
            self.model.set_own(partition, sums, counts)
        self.model.recentre()

    def release(self, partitions: set[int]) -> None:
        """Forget customers of revoked partitions; the next owner reloads them from Redis."""
        for cid in [cid for cid, p in self.partition_of_customer.items() if p in partitions]:
            del self.customers[cid]
            del self.partition_of_customer[cid]
            self.pending.pop(cid, None)
        self.index.drop_partitions(partitions)
        self.model.release(partitions)
        self.observations.release(partitions)
        for partition in partitions:
            self.sweep_markers.pop(partition, None)
            self.partition_times.pop(partition, None)

    def stats_for(self, batch: BatchCommit, partitions: Iterable[int], keys_of: Callable[[int], str]) -> None:
        """Put the whole statistics of ``partitions`` into the commit."""
        for partition in partitions:
            marker = self.sweep_markers.get(partition)
            batch.stats[keys_of(partition)] = self.model.stats_fields(partition, marker.isoformat() if marker else "")

    def switch_model(
        self, model: LocalModel, previous_names: dict[int, str], partitions: set[int], as_of: datetime
    ) -> list[Change]:
        """Adopt a new model version for the customers of ``partitions``: exact re-score, no debounce.

        A refresh is a deliberate relabelling, so the published segment follows the
        new assignment at once, with exactly one ``model_refresh`` change per
        customer whose segment id changed (committed with the new statistics, so a
        restart neither repeats nor skips it). ``previous_names`` name the ids of
        the version being left, for the changes' ``previous`` field.
        """
        if model.version != self.model.version:
            model.partition_count = self.model.partition_count
            self.model = model
            self.index = ScoredIndex()
            partitions = set(self.partition_of_customer.values()) | partitions
        # Their statistics were counted under the old version: score against the
        # model's own (refit) statistics until they are rebuilt below.
        self.model.release(partitions)
        self.model.recentre()
        names = previous_names | self.model.names
        changes = []
        scored = [
            (cid, features)
            for cid, partition in self.partition_of_customer.items()
            if partition in partitions
            and (features := compute_features(self.customers[cid].aggregates, as_of)) is not None
        ]
        vectors = self.model.vectors(np.array([[f[name] for name in FEATURE_NAMES] for _, f in scored]))
        distances = self.model.distances(vectors) if scored else np.zeros((0, self.model.k))
        for row, (cid, features) in enumerate(scored):
            state, partition = self.customers[cid], self.partition_of_customer[cid]
            nearest = int(distances[row].argmin())
            state.features, state.as_of, state.vector = features, as_of, vectors[row]
            state.segment = self.model.segment_ids[nearest]
            self.pending.pop(cid, None)
            if state.published != state.segment:
                old_row = self.model.row_of.get(state.published) if state.published is not None else None
                margin = 0.0 if old_row is None else float(distances[row, old_row] - distances[row, nearest])
                payload = self._published(state, "model_refresh", as_of, margin, names)
                changes.append(Change(partition, cid, payload))
            self._mark(cid, WRITE_SCORE)
            self.index.update(cid, state.aggregates, features, vectors[row], nearest, nearest, partition)
        self._rebuild(partitions)
        return changes

    def dirty_records(self, batch: BatchCommit) -> None:
        """Put every customer record changed since the last commit, and what that does to product
        popularity per segment, into ``batch``."""
        batch.products = self.popularity.take()
        for cid, level in self._dirty.items():
            state = self.customers[cid]
            batch.customers[cid] = (
                {"segment": str(state.segment)} if level == WRITE_SEGMENT else state.fields(level == WRITE_ALL)
            )
        self._dirty.clear()

    # -- a batch ------------------------------------------------------------------------------
    def apply(self, batch: BatchCommit, lines: Iterable[tuple[int, InvoiceLine]], watermark: datetime) -> list[Change]:
        """Fold the batch's new lines into state in event-time order, sweeping at each day passed."""
        self.sweep_seconds = []
        ordered = sorted(lines, key=_event_time)
        latest = {partition: line.invoice_date for partition, line in ordered}  # ordered: the last one is the latest
        for partition, moment in latest.items():
            if partition not in self.partition_times or moment > self.partition_times[partition]:
                self.partition_times[partition] = moment
        changes: list[Change] = []
        position = 0
        kinds: Counter[str] = Counter()
        for day in self._days_to_sweep():
            end = bisect.bisect_left(ordered, day, lo=position, key=_event_time)
            changes += self._score(batch, self._fold(batch, ordered[position:end], kinds), day)
            started = time.perf_counter()
            changes += self._sweep(batch, day)
            self.sweep_seconds.append(time.perf_counter() - started)
            position = end
        changes += self._score(batch, self._fold(batch, ordered[position:], kinds), watermark)
        for kind, n in kinds.items():
            batch.count(f"lines_{kind}", n)
        self.dirty_records(batch)
        return changes

    def _days_to_sweep(self) -> list[datetime]:
        """Event days that every owned partition has now passed and that were not swept yet."""
        if not self.partition_times:
            return []
        low = _day(min(self.partition_times.values()))
        if self.last_sweep_day is None:
            self.last_sweep_day = low
            return []
        days = []
        day = self.last_sweep_day + timedelta(days=1)
        while day <= low:
            days.append(day)
            day += timedelta(days=1)
        return days

    def _fold(self, batch: BatchCommit, lines: list[tuple[int, InvoiceLine]], kinds: Counter[str]) -> Touched:
        touched: Touched = {}
        customers = self.customers
        purchase_line = self.observations.purchase_line
        popularity_line = self.popularity.line
        for partition, line in lines:
            kind = classify(line)
            kinds[kind] += 1
            if kind == "invalid_price":
                continue
            cid = line.customer_id
            if cid is None:
                batch.guest_lines += 1
                batch.guest_amount += line.amount
                batch.guest_invoices.add(line.invoice_no)
                continue
            state = customers.get(cid)
            if state is None:
                state = customers[cid] = CustomerState(CustomerAggregates(cid))
                self.partition_of_customer[cid] = partition
                batch.new_customers.add(cid)
            aggregates = state.aggregates
            if kind == "purchase":
                purchase_line(partition, cid, line.invoice_no, line.invoice_date, line.amount, aggregates.last_purchase)
            apply_line(aggregates, line, kind)
            if kind != "non_product":
                popularity_line(state.published, line.stock_code, line.quantity)
            touched[cid] = (partition, line)
        return touched

    def _score(self, batch: BatchCommit, touched: Touched, as_of: datetime, sweep: bool = False) -> list[Change]:
        """Exact features, nearest centroid and publish decision for each touched customer."""
        scored: list[tuple[str, dict[str, float]]] = []
        for cid in touched:
            state = self.customers[cid]
            features = compute_features(state.aggregates, as_of)
            if features is None:
                state.as_of = as_of
                self._mark(cid, WRITE_ALL)
            else:
                scored.append((cid, features))
        if not scored:
            return []
        vectors = self.model.vectors(np.array([[f[name] for name in FEATURE_NAMES] for _, f in scored]))
        distances = self.model.distances(vectors)
        nearest = distances.argmin(axis=1)
        changes = []
        for row, (cid, features) in enumerate(scored):
            state = self.customers[cid]
            partition, line = touched[cid]
            segment = self.model.segment_ids[nearest[row]]
            counted = self.index.row.get(cid)
            old_vector = self.index.vectors[counted] if counted is not None else None
            self.model.move(partition, state.segment, old_vector, segment, vectors[row])
            if not sweep:
                moment = line.invoice_date if line is not None else as_of
                distance = float(distances[row, nearest[row]])
                self.observations.assignment(partition, moment, cid, state.segment, segment, distance)
            state.features, state.as_of, state.vector, state.segment = features, as_of, vectors[row], segment
            change = self._publish_decision(state, distances[row], line, sweep)
            if change is not None:
                changes.append(Change(partition, cid, change))
            self._mark(cid, WRITE_SCORE if sweep else WRITE_ALL)
            self.index.update(
                cid, state.aggregates, features, vectors[row], nearest[row], self._row_of(state.published), partition
            )
        self.model.recentre()
        return changes

    def _publish_decision(
        self, state: CustomerState, distances: np.ndarray, line: InvoiceLine | None, sweep: bool
    ) -> str | None:
        """Switch the published segment only when the new centroid is clearly closer.

        Two debounces, neither of which touches the model statistics: the new
        centroid must be closer by ``publish_margin``; and a move caused by
        inactivity alone must have held at ``confirm_sweeps`` consecutive sweeps,
        with the published segment older than ``inactivity_dwell`` (both checked
        by :meth:`_confirmed` before the exact re-score), so a customer on a
        boundary that moves with the centroids does not flip-flop.
        """
        assert state.segment is not None and state.features is not None and state.as_of is not None
        cid = state.aggregates.customer_id
        new_row = self.model.row_of[state.segment]
        previous = state.published
        if previous == state.segment:
            self.pending.pop(cid, None)
            return None
        if previous is not None and previous in self.model.row_of:
            margin = float(distances[self.model.row_of[previous]] - distances[new_row])
            if margin <= self.publish_margin:
                self.pending.pop(cid, None)
                return None
        else:
            margin = float("inf") if previous is not None else 0.0
        self.pending.pop(cid, None)
        reason: ChangeReason
        if sweep:
            reason = "inactivity"
        elif previous is None:
            reason = "first_purchase"
        else:
            reason = "cancellation" if line is not None and line.is_cancellation else "purchase"
        event_time = line.invoice_date if line is not None else state.as_of
        return self._published(state, reason, event_time, margin if margin != float("inf") else 0.0)

    def _published(
        self,
        state: CustomerState,
        reason: ChangeReason,
        event_time: datetime,
        margin: float,
        names: Mapping[int, str] | None = None,
    ) -> str:
        """Publish the customer's segment: bump its sequence, return the change event's JSON.

        ``names`` name the previous segment when it may belong to the model version being left.
        """
        assert state.segment is not None and state.features is not None
        previous = state.published
        names = self.model.names if names is None else names
        self.popularity.moved(state.aggregates.product_units, previous, state.segment)
        state.published = state.segment
        state.published_at = event_time
        state.seq += 1
        change = SegmentChange(
            customer_id=state.aggregates.customer_id,
            previous=None if previous is None else SegmentRef(id=previous, name=names.get(previous, "")),
            current=SegmentRef(id=state.segment, name=self.model.names[state.segment]),
            model_version=self.model.version,
            event_time=event_time,
            reason=reason,
            features=state.features,
            distance_margin=margin,
            sequence=state.seq,
        )
        return change.model_dump_json()

    def _mark(self, customer_id: str, level: int) -> None:
        self._dirty[customer_id] = max(self._dirty.get(customer_id, WRITE_SEGMENT), level)

    def _sweep(self, batch: BatchCommit, day: datetime) -> list[Change]:
        """Move every idle customer to ``day``'s recency, run Lloyd passes, then publish what moved.

        Every owned customer was scored at or before ``day`` (the batch is folded
        in event-time order up to it), so all are idle here and counted at their
        vector as of ``day``. Each Lloyd pass assigns every customer to its nearest
        centroid and recomputes the statistics, until nothing moves; a move only
        rewrites the customer's ``segment`` (its counted vector follows from its
        record and the partition's sweep time). Customers whose published
        segment is now clearly farther than their segment are re-scored exactly
        and go through the publish decision.
        """
        self.last_sweep_day = day
        owned = set(self.partition_of_customer.values())
        for partition in owned:
            self.sweep_markers[partition] = day
        batch.count("sweeps")
        n = len(self.index)
        if n == 0:
            return []
        self.index.vectors[:n] = self.model.vectors(self.index.features_at(day))
        self._rebuild(owned)
        for _ in range(self.lloyd_passes):
            moved = self._reassign()
            if not moved:
                break
            batch.count("sweep_moves", moved)
            self._rebuild(owned)
        confirmed = self._confirmed(self._publishable(), day)
        batch.count("sweep_rescored", len(confirmed))
        return self._score(batch, confirmed, day, sweep=True)

    def _reassign(self) -> int:
        """One Lloyd assignment step over every scored customer; returns how many moved."""
        n = len(self.index)
        nearest = self.model.distances(self.index.vectors[:n]).argmin(axis=1)
        rows = np.flatnonzero(nearest != self.index.segment[:n])
        for row in rows:
            cid = self.index.ids[row]
            self.customers[cid].segment = self.model.segment_ids[nearest[row]]
            self._mark(cid, WRITE_SEGMENT)
        self.index.segment[rows] = nearest[rows]
        return len(rows)

    def _confirmed(self, publishable: Touched, day: datetime) -> Touched:
        """The publishable customers whose move has now held at ``confirm_sweeps`` consecutive sweeps,
        and whose published segment is more than ``inactivity_dwell`` old.

        Counted on the sweep's vectors, so only a confirmed move pays for an exact
        re-score; a customer that is not publishable at a sweep starts again from zero.
        The dwell keeps an idle customer on a moving boundary from being switched
        back and forth within days (the centroids move a little with every sweep).
        """
        pending: dict[str, tuple[int, int]] = {}
        confirmed: Touched = {}
        for cid, cause in publishable.items():
            state = self.customers[cid]
            segment = state.segment
            assert segment is not None
            candidate, seen = self.pending.get(cid, (segment, 0))
            seen = seen + 1 if candidate == segment else 1
            settled = state.published_at is None or day - state.published_at > self.inactivity_dwell
            if seen >= self.confirm_sweeps and settled:
                confirmed[cid] = cause
            else:
                pending[cid] = (segment, seen)
        self.pending = pending
        return confirmed

    def _publishable(self) -> Touched:
        """Customers whose published segment is farther than their segment by more than the margin."""
        n = len(self.index)
        distances = self.model.distances(self.index.vectors[:n])
        rows = np.arange(n)
        segment, published = self.index.segment[:n], self.index.published[:n]
        known = published >= 0
        gap = distances[rows, np.where(known, published, segment)] - distances[rows, segment]
        ids = [
            self.index.ids[row] for row in np.flatnonzero(known & (published != segment) & (gap > self.publish_margin))
        ]
        return {cid: (self.partition_of_customer[cid], None) for cid in ids}
