"""What one batch does to state: pure logic between the read and the commit.

The loop reads, this module decides, the committer writes. Keeping the decisions
free of I/O lets tests drive them directly and keeps the hot path visible.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from shared.contracts.invoice import InvoiceLine
from shared.contracts.segment_change import ChangeReason, SegmentChange, SegmentRef
from shared.features.aggregates import CustomerAggregates, apply_line, classify
from shared.features.vector import FEATURE_NAMES, compute_features
from worker.stream.commit import BatchCommit
from worker.stream.customers import CustomerState
from worker.stream.model import LocalModel
from worker.stream.sweep import IdleIndex


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
    lloyd_passes: int
    cutoff: datetime | None
    customers: dict[str, CustomerState] = field(default_factory=dict)
    idle: IdleIndex = field(default_factory=IdleIndex)
    partition_of_customer: dict[str, int] = field(default_factory=dict)
    last_sweep_day: datetime | None = None
    sweep_markers: dict[int, datetime] = field(default_factory=dict)
    partition_times: dict[int, datetime] = field(default_factory=dict)
    pending: dict[str, tuple[int, int, datetime]] = field(default_factory=dict)

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
            if state.features is not None:
                self.idle.update(cid, state.aggregates, state.features)
        for partition, marker in markers.items():
            stale = [
                cid
                for cid, state in customers.items()
                if partition_of[cid] == partition and state.features is not None and state.as_of < marker
            ]
            if stale:
                rows = [self.idle.row[cid] for cid in stale]
                vectors = self.model.vectors(self.idle.features_at(marker)[rows])
                for cid, vector in zip(stale, vectors, strict=True):
                    customers[cid].vector = vector
        self.sweep_markers.update(markers)
        self._rebuild(set(partition_of.values()) | set(markers))

    def _rebuild(self, partitions: Iterable[int]) -> None:
        """Recompute owned partitions' statistics from their customers' counted vectors."""
        members: dict[int, list[tuple[int, np.ndarray]]] = {partition: [] for partition in partitions}
        for cid, state in self.customers.items():
            bucket = members.get(self.partition_of_customer[cid])
            if bucket is not None and state.segment is not None and state.vector is not None:
                bucket.append((state.segment, state.vector))
        for partition, pairs in members.items():
            self.model.rebuild(partition, pairs)

    def release(self, partitions: set[int]) -> None:
        """Forget customers of revoked partitions; the next owner reloads them from Redis."""
        gone = [cid for cid, p in self.partition_of_customer.items() if p in partitions]
        for cid in gone:
            del self.customers[cid]
            del self.partition_of_customer[cid]
        self.model.release(partitions)
        for partition in partitions:
            self.sweep_markers.pop(partition, None)
            self.partition_times.pop(partition, None)
        if gone:
            kept = self.idle
            self.idle = IdleIndex()
            for cid in kept.ids:
                state = self.customers.get(cid)
                if state is not None and state.features is not None:
                    self.idle.update(cid, state.aggregates, state.features)

    def stats_for(self, batch: BatchCommit, partitions: Iterable[int], keys_of: Callable[[int], str]) -> None:
        """Put the whole statistics of ``partitions`` into the commit."""
        for partition in partitions:
            marker = self.sweep_markers.get(partition)
            batch.stats[keys_of(partition)] = self.model.stats_fields(partition, marker.isoformat() if marker else "")

    def apply(self, batch: BatchCommit, lines: Iterable[tuple[int, InvoiceLine]], watermark: datetime) -> list[Change]:
        """Fold the batch's new lines into state and score every customer they touched."""
        touched: dict[str, tuple[int, InvoiceLine]] = {}
        kinds: Counter[str] = Counter()
        for partition, line in lines:
            kind = classify(line)
            kinds[kind] += 1
            if kind == "invalid_price":
                continue
            if kind == "guest":
                batch.guest_lines += 1
                batch.guest_amount += line.amount
                batch.guest_invoices.add(line.invoice_no)
                continue
            state = self.customers.get(line.customer_id)
            if state is None:
                state = CustomerState(CustomerAggregates(line.customer_id))
                self.customers[line.customer_id] = state
                self.partition_of_customer[line.customer_id] = partition
                batch.new_customers.add(line.customer_id)
            apply_line(state.aggregates, line, kind)
            touched[line.customer_id] = (partition, line)
            latest = self.partition_times.get(partition)
            if latest is None or line.invoice_date > latest:
                self.partition_times[partition] = line.invoice_date
        for kind, n in kinds.items():
            batch.count(f"lines_{kind}", n)
        changes = self._score(batch, touched, watermark)
        if self.partition_times:
            changes += self._sweep(batch, set(touched), min(self.partition_times.values()))
        return changes

    def _score(
        self,
        batch: BatchCommit,
        touched: dict[str, tuple[int, InvoiceLine | None]],
        as_of: datetime,
        sweep: bool = False,
    ) -> list[Change]:
        scored: list[tuple[str, dict[str, float]]] = []
        for cid in touched:
            state = self.customers[cid]
            features = compute_features(state.aggregates, as_of)
            if features is None:
                state.as_of = as_of
                batch.customers[cid] = state.fields()
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
            self.model.move(partition, state.segment, state.vector, segment, vectors[row])
            state.features, state.as_of, state.vector, state.segment = features, as_of, vectors[row], segment
            change = self._publish_decision(state, distances[row], line, sweep)
            if change is not None:
                changes.append(Change(partition, cid, change))
            batch.customers[cid] = state.fields()
            self.idle.update(cid, state.aggregates, features)
        self.model.recentre()
        return changes

    def _publish_decision(
        self, state: CustomerState, distances: np.ndarray, line: InvoiceLine | None, sweep: bool
    ) -> str | None:
        """Switch the published segment only when the new centroid is clearly closer.

        Two debounces, neither of which touches the model statistics: the new
        centroid must be closer by ``publish_margin``; and a move caused by
        inactivity alone must hold at ``confirm_sweeps`` consecutive sweeps, so a
        customer on a boundary that moves with the centroids does not flip-flop.
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
        if sweep and previous is not None:
            candidate, seen, day = self.pending.get(cid, (state.segment, 0, state.as_of))
            if candidate != state.segment:
                seen = 0
            if seen == 0 or day != state.as_of:
                seen += 1
            if seen < self.confirm_sweeps:
                self.pending[cid] = (state.segment, seen, state.as_of)
                return None
        self.pending.pop(cid, None)
        reason: ChangeReason
        if sweep:
            reason = "inactivity"
        elif previous is None:
            reason = "first_purchase"
        else:
            reason = "cancellation" if line is not None and line.is_cancellation else "purchase"
        state.published = state.segment
        state.seq += 1
        change = SegmentChange(
            customer_id=state.aggregates.customer_id,
            previous=None if previous is None else SegmentRef(id=previous, name=self.model.names.get(previous, "")),
            current=SegmentRef(id=state.segment, name=self.model.names[state.segment]),
            model_version=self.model.version,
            event_time=line.invoice_date if line is not None else state.as_of,
            reason=reason,
            features=state.features,
            distance_margin=margin if margin != float("inf") else 0.0,
            sequence=state.seq,
        )
        return change.model_dump_json()

    def _sweep(self, batch: BatchCommit, touched: set[str], low_watermark: datetime) -> list[Change]:
        """At each new event day, re-score idle customers whose segment would change.

        The day is taken from the *lowest* event time reached over the owned
        partitions: a customer is only idle as of a day once every partition that
        could still bring its purchases has passed that day.
        """
        watermark = low_watermark
        day = datetime(watermark.year, watermark.month, watermark.day)
        if self.last_sweep_day is None:
            self.last_sweep_day = day
            return []
        if day <= self.last_sweep_day:
            return []
        self.last_sweep_day = day
        n = len(self.idle.ids)
        if n == 0:
            return []
        vectors = self.model.vectors(self.idle.features_at(day))
        for row, cid in enumerate(self.idle.ids):
            if cid not in touched:
                self.customers[cid].vector = vectors[row]
        owned = set(self.partition_of_customer.values())
        for partition in owned:
            self.sweep_markers[partition] = day
        self._rebuild(owned)
        self.model.recentre()
        changes: list[Change] = []
        for iteration in range(self.lloyd_passes):
            candidates = self._misassigned(vectors, touched, publishing=iteration == 0)
            if not candidates:
                break
            batch.count("sweep_rescored", len(candidates))
            changes += self._score(batch, candidates, day, sweep=True)
            for cid in candidates:
                vectors[self.idle.row[cid]] = self.customers[cid].vector
            self._rebuild(owned)
            self.model.recentre()
        batch.count("sweeps")
        return changes

    def _misassigned(
        self, vectors: np.ndarray, touched: set[str], publishing: bool
    ) -> dict[str, tuple[int, InvoiceLine | None]]:
        """Idle customers whose nearest centroid is not their segment (or, with ``publishing``,
        whose published segment is now clearly farther than the nearest): one Lloyd assignment step."""
        distances = self.model.distances(vectors)
        nearest = distances.argmin(axis=1)
        assigned, published = self._segment_rows()
        moved = nearest != assigned
        if publishing:
            rows = np.arange(len(nearest))
            safe_published = np.where(published >= 0, published, nearest)
            moved |= distances[rows, safe_published] - distances[rows, nearest] > self.publish_margin
        return {
            self.idle.ids[row]: (self.partition_of_customer[self.idle.ids[row]], None)
            for row in np.flatnonzero(moved)
            if self.idle.ids[row] not in touched
        }

    def _segment_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Centroid rows of each indexed customer's assigned and published segments (-1: none)."""
        assigned = np.full(len(self.idle.ids), -1)
        published = np.full(len(self.idle.ids), -1)
        for row, cid in enumerate(self.idle.ids):
            state = self.customers[cid]
            assigned[row] = self.model.row_of.get(state.segment, -1) if state.segment is not None else -1
            published[row] = self.model.row_of.get(state.published, -1) if state.published is not None else -1
        return assigned, published
