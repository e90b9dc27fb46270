"""What one step does to state: pure logic between the read and the commit.

The step receives released records in event-time order (:mod:`worker.stream.alignment`)
and what Redis said about them (:mod:`worker.stream.reads`), and fills one
:class:`~worker.stream.checkpoint.PartitionCommit` per partition. In order:

1. repeated event ids are dropped (the first occurrence wins);
2. guest lines go to the guest statistics, lines priced at zero or less nowhere;
3. customer lines are folded into the book column-wise, and each customer is
   scored **as of its own event**: all its lines at one effective time are one
   decision, against the centroids of the last daily sweep;
4. at every event-day boundary the records cross, every owned customer is moved
   to that midnight and re-assigned in ``passes`` Lloyd steps, each against the
   centroids of all partitions after the pass before
   (:func:`worker.segmentation.kmeans.day_step`); the last pass sets the stored
   segments, and inactivity switches are confirmed there
   (:mod:`worker.segmentation.publish_policy`).

Nothing here depends on how the records were batched: decisions within a day use
frozen centroids, sums are per customer in event order, and the sweep's are in
fixed point. So the same log gives the same bytes (README, "Event time").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from shared.contracts.segment_change import ChangeReason, SegmentChange, SegmentRef
from shared.features.clock import MICROS_PER_DAY, NO_TIME, SECONDS_PER_DAY, day_start, from_micros, iso, month_numbers
from shared.features.fold import CANCELLATION, NON_PRODUCT, PURCHASE, LineBatch, fold
from shared.features.vector import FEATURE_NAMES, features_matrix, scoreable
from shared.state.customer_record import decision_columns, pending_text
from shared.state.guests import nanos
from shared.state.model_stats import AS_OF_FIELD, VERSION_FIELD, DayStatistics, Statistics
from worker.segmentation.assignment import distance_to, nearest_centroid
from worker.segmentation.kmeans import day_step
from worker.segmentation.model import SegmentModel
from worker.segmentation.publish_policy import Pending, PublishPolicy
from worker.segmentation.sweep_ticks import SweepTicks
from worker.stream.alignment import Released
from worker.stream.book import AGG, DECISION, NO_SEGMENT, PENDING, CustomerBook
from worker.stream.checkpoint import PartitionCommit
from worker.stream.decode import Records
from worker.stream.grouping import groups
from worker.stream.line_kinds import kind_codes
from worker.stream.observations import Observations
from worker.stream.reads import StepReads, day_key, event_day

GENERATION_SPAN = 1_000_000_000  # sequence numbers of one generation (README: Redis rollback)
# A step's partitions land one after another, so a worker killed in between leaves some of them
# up to the days that step swept behind the others; to catch up they need the others' statistics
# of those days. So a step sweeps at most STEP_DAYS midnights, and each partition's statistics
# after every pass are kept KEPT_DAYS days back (in memory and in Redis).
KEPT_DAYS = 8
STEP_DAYS = KEPT_DAYS - 1
_NOTHING: Mapping[str, int] = MappingProxyType({})  # a customer with no stored members fields


@dataclass
class StepLines:
    """The step's customer lines (after dedup and the price rule), in processing order."""

    records: Records
    effective: np.ndarray
    slots: np.ndarray
    kinds: np.ndarray
    new_invoice: np.ndarray
    new_product: np.ndarray

    def take(self, index: np.ndarray | slice) -> StepLines:
        """The lines at ``index`` (see :meth:`Records.take`)."""
        return StepLines(
            self.records.take(index),
            self.effective[index],
            self.slots[index],
            self.kinds[index],
            self.new_invoice[index],
            self.new_product[index],
        )


@dataclass
class Processor:
    """The owned customers, the live model and the rules that move them."""

    book: CustomerBook
    model: SegmentModel
    policy: PublishPolicy
    dedup_retention_days: int
    ticks: SweepTicks
    base: int  # midnight at or before the bootstrap cutoff: every partition counts as swept there at first
    owned: set[int] = field(default_factory=set)
    partition_count: int = 0
    generations: dict[int, int] = field(default_factory=dict)
    swept: dict[int, int] = field(default_factory=dict)  # per owned partition: tick of its last sweep pass
    own_stats: dict[int, dict[int, Statistics]] = field(default_factory=dict)  # partition -> tick -> stats
    remote_stats: dict[tuple[int, int], DayStatistics] = field(default_factory=dict)  # (partition, tick)
    fallback: Statistics | None = None  # the model's own statistics (bootstrap or refit)
    centroids_tick: int = NO_TIME  # the tick whose centroids are in force in ``model``
    previous_names: dict[int, str] = field(default_factory=dict)  # names of ids a refresh retired
    _published_before: dict[int, int] = field(default_factory=dict)
    _units: dict[tuple[int, str], int] = field(default_factory=dict)
    _observed: dict[int, Observations] = field(default_factory=dict)  # per partition
    sweep_seconds: list[float] = field(default_factory=list)
    # The last sweep pass's midnight, rows, features and vectors: a midnight's passes share them (nothing is
    # folded between its passes); forgotten when a step starts and whenever lines are folded.
    _at_midnight: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None

    # -- statistics and centroids -------------------------------------------------------------
    def use_fallback(self, model_stats: dict[str, str]) -> None:
        """The model's own statistics, stand-in while the partitions have none under its version."""
        if model_stats:
            self.fallback = Statistics.from_mapping(model_stats, self.model.segment_ids.tolist(), self.model.dimensions)

    def use_remote(self, stats: dict[tuple[int, int], DayStatistics]) -> None:
        """Other partitions' statistics at the ticks this step needs (read from Redis)."""
        self.remote_stats = stats
        self.centroids_tick = NO_TIME

    def _use_centroids(self, tick: int) -> None:
        """Set the centroids of sweep pass ``tick``: the mean of every partition's statistics there.

        Up to the bootstrap's day, or while some partition has none under this
        model version (just after a refresh), the model's own.
        """
        if tick == self.centroids_tick:
            return
        total = self._total(tick) if tick > self.base_tick else None
        if total is None:
            total = self.fallback
        if total is None:
            self.model.centroids = self.model.initial.copy()
        else:
            self.model.set_statistics(total)
        self.centroids_tick = tick

    def _total(self, tick: int) -> Statistics | None:
        version = self.model.version
        total = self.model.empty_statistics()
        for partition in range(self.partition_count):
            if partition in self.owned:
                stats = self.own_stats.get(partition, {}).get(tick)
            else:
                remote = self.remote_stats.get((partition, tick))
                stats = remote.stats if remote is not None and remote.version == version else None
            if stats is None:
                return None
            total = total + stats
        return total

    @property
    def base_tick(self) -> int:
        return self.ticks.final(self.base) if self.base != NO_TIME else NO_TIME

    def sweep_cap(self) -> int | None:
        """The last sweep pass this step may run (see STEP_DAYS); None before any time is known."""
        if not self.owned:
            return None
        first = min(self.swept_at(p) for p in self.owned)
        return None if first == NO_TIME else self.ticks.final(day_start(first) + STEP_DAYS * MICROS_PER_DAY)

    def kept_ticks(self, swept: int) -> list[int]:
        """The passes whose statistics a partition swept up to ``swept`` keeps (oldest first)."""
        return [*self.ticks.between(self.ticks.final(day_start(swept) - KEPT_DAYS * MICROS_PER_DAY), swept)]

    def swept_at(self, partition: int) -> int:
        """The tick of the partition's last sweep pass (the bootstrap's day before any)."""
        return self.swept.get(partition, self.base_tick)

    def own_loaded(self, partition: int, swept: int, stats: dict[int, DayStatistics]) -> None:
        """A partition taken over: its last sweep pass, and its stored statistics of the last passes."""
        self.swept[partition] = swept if swept != NO_TIME else self.base_tick
        self.own_stats[partition] = {
            tick: entry.stats for tick, entry in stats.items() if entry.version == self.model.version
        }
        self.centroids_tick = NO_TIME

    # -- a step ---------------------------------------------------------------------------------
    def step(self, released: Released, reads: StepReads, commits: dict[int, PartitionCommit], sweep_until: int) -> None:
        """Apply released records (event-time order) to state, sweeping at each midnight up to ``sweep_until``
        (every record before it is among them or applied already); fill ``commits``."""
        self.sweep_seconds = []
        self._at_midnight = None
        records, effective = released.records, released.effective
        # Indices into the released records, so each kind of line is taken from them once.
        keep = self._drop_repeats(records, reads, commits)
        priced = records.price[keep] > 0
        for partition, n in zip(*np.unique(records.partition[keep[~priced]], return_counts=True), strict=True):
            commits[int(partition)].count("lines_invalid_price", int(n))
        guest = priced & np.equal(records.customer_id[keep], None)
        self._guests(records.take(keep[guest]), commits)
        customer = keep[priced & ~guest]
        lines = self._customer_lines(records.take(customer), effective[customer], reads, commits)
        position = 0
        for tick in self._ticks(lines.effective, sweep_until):
            if self.ticks.pass_of(tick) == 1:  # the day before is complete: apply what is left of it
                end = int(np.searchsorted(lines.effective, day_start(tick), side="left"))
                self._day(lines.take(slice(position, end)), commits)
                position = end
            self._sweep(tick, commits)
        self._day(lines.take(slice(position, len(lines.slots))), commits)

    def _ticks(self, effective: np.ndarray, until: int) -> list[int]:
        """The sweep passes to run: from the owned partitions' earliest to ``until``.

        ``until`` covers every midnight the released records cross (the caller
        releases records only up to where every pass before them can be run).
        """
        if not self.owned:
            return []
        start = min(self.swept_at(p) for p in self.owned)
        if start == NO_TIME:  # no bootstrap cutoff to start from: the first records' day
            if not len(effective):
                return []
            start = self.ticks.final(day_start(int(effective[0])))
        if len(effective):
            until = max(until, self.ticks.final(day_start(int(effective[-1]))))
        return self.ticks.between(start, until) if until != NO_TIME else []

    def _drop_repeats(self, records: Records, reads: StepReads, commits: dict[int, PartitionCommit]) -> np.ndarray:
        """The lines to apply: an event id already applied, or earlier in the step, is a repeat (dropped).

        Ids are compared as their dedup digests (:mod:`shared.state.dedup`); the entries
        kept go into their partition's dedup sets of their event day.
        """
        seen, remembered = reads.seen, reads.entries
        ids = [member for _, member in remembered]
        if seen.isdisjoint(ids) and len(set(ids)) == len(ids):
            keep = np.arange(len(ids))
        else:
            repeat = np.zeros(len(ids), dtype=bool)
            earlier: set[str] = set()
            for row, member in enumerate(ids):
                repeat[row] = member in seen or member in earlier
                earlier.add(member)
            for partition, n in zip(*np.unique(records.partition[repeat], return_counts=True), strict=True):
                commits[int(partition)].count("duplicates_dropped", int(n))
            keep = np.flatnonzero(~repeat)
        for group in groups(records.partition[keep], records.time[keep] // MICROS_PER_DAY):
            rows = keep[group]
            first = int(rows[0])
            day = day_key(int(records.time[first]) // MICROS_PER_DAY)
            commits[int(records.partition[first])].seen.setdefault(day, []).extend(
                remembered[row] for row in rows.tolist()
            )
        return keep

    def _guests(self, guests: Records, commits: dict[int, PartitionCommit]) -> None:
        amounts = (guests.quantity * guests.price).tolist()
        for partition, moment, invoice, amount in zip(
            guests.partition.tolist(), guests.time.tolist(), guests.invoice_no, amounts, strict=True
        ):
            commit = commits[partition]
            commit.guest_lines += 1
            commit.guest_amount_nanos += nanos(amount)
            commit.guest_invoices[event_day(moment)].append(invoice)
            commit.count("lines_guest")

    def _customer_lines(
        self, records: Records, effective: np.ndarray, reads: StepReads, commits: dict[int, PartitionCommit]
    ) -> StepLines:
        """Slots (new customers added), kinds, and whether each line opens an invoice or buys a new product."""
        book = self.book
        unknown = [i for i, cid in enumerate(records.customer_id) if cid not in book.slot_of]
        if unknown:
            first: dict[str, int] = {}
            for index in unknown:
                first.setdefault(records.customer_id[index], int(records.partition[index]))
            book.add(list(first), list(first.values()))
            for cid, partition in first.items():
                commits[partition].index_add.append(cid)
                commits[partition].count("new_customers")
        slots = book.slots(records.customer_id)
        kinds = kind_codes(records.stock_code, records.invoice_no)
        new_invoice = np.zeros(len(records), dtype=bool)
        new_product = np.zeros(len(records), dtype=bool)
        stored = reads.stored
        units = self._units
        for kind, name in enumerate(("lines_purchase", "lines_cancellation", "lines_non_product")):
            for partition, n in zip(*np.unique(records.partition[kinds == kind], return_counts=True), strict=True):
                commits[int(partition)].count(name, int(n))
        product = np.flatnonzero(kinds != NON_PRODUCT)
        for index, cid, invoice, code, kind, quantity, partition, slot in zip(
            product.tolist(),
            *(column[product].tolist() for column in (records.customer_id, records.invoice_no, records.stock_code)),
            kinds[product].tolist(),
            records.quantity[product].tolist(),
            records.partition[product].tolist(),
            slots[product].tolist(),
            strict=True,
        ):
            # The members' values as the commit writes them: stored (or written earlier in the step) plus
            # this line. A product's value is 2 x net units, plus 1 once bought (odd: bought).
            members = commits[partition].members.setdefault(cid, {})
            known = stored.get(cid, _NOTHING)
            name = "i:" + invoice
            if name not in members and name not in known:
                new_invoice[index] = True
                members[name] = 1
            name = "p:" + code
            value = members.get(name)
            if value is None:
                value = known.get(name, 0)
            value += 2 * quantity
            if kind == PURCHASE and not value % 2:
                new_product[index] = True
                value += 1
            members[name] = value
            units[slot, code] = units.get((slot, code), 0) + quantity
        return StepLines(records, effective, slots, kinds, new_invoice, new_product)

    # -- one event day: fold and score each customer at its own events -----------------------
    def _day(self, lines: StepLines, commits: dict[int, PartitionCommit]) -> None:
        if not len(lines.slots):
            return
        self._use_centroids(self.ticks.final(day_start(int(lines.effective[0]))))
        order = np.lexsort((np.arange(len(lines.slots)), lines.effective, lines.slots))
        sorted_slots, sorted_times = lines.slots[order], lines.effective[order]
        new_moment = np.r_[True, (sorted_slots[1:] != sorted_slots[:-1]) | (sorted_times[1:] != sorted_times[:-1])]
        new_customer = np.r_[True, sorted_slots[1:] != sorted_slots[:-1]]
        moment_index = np.cumsum(new_moment) - 1
        first_moment_of_customer = np.maximum.accumulate(np.where(new_customer, moment_index, 0))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = moment_index - first_moment_of_customer
        if not rank.any():  # one moment per customer, the usual day: every line in one round
            self._round(lines, commits)
            return
        for round_ in range(int(rank.max()) + 1):
            self._round(lines.take(np.flatnonzero(rank == round_)), commits)

    def _round(self, lines: StepLines, commits: dict[int, PartitionCommit]) -> None:
        """Each customer's next moment: fold its lines, then one scoring decision as of the moment."""
        book, columns = self.book, self.book.aggregates
        records = lines.records
        slots, index = np.unique(lines.slots, return_index=True)
        moments = lines.effective[index]
        previous_purchase = columns.last_purchase[slots].copy()
        fold(
            columns,
            LineBatch(
                slot=lines.slots,
                kind=lines.kinds,
                quantity=records.quantity,
                amount=records.quantity * records.price,
                time=records.time,
                month=month_numbers(records.time),
                country=columns.countries.codes(records.country.tolist()),
                new_invoice=lines.new_invoice,
                new_product=lines.new_product,
            ),
        )
        book.mark(slots, AGG)
        self._at_midnight = None
        self._observe_invoices(lines, slots, previous_purchase)
        # A moment with product lines is a customer event and is decided on; fees or postage
        # alone change no feature but time, which the daily sweep covers.
        purchase_moment = np.zeros(len(slots), dtype=bool)
        purchase_moment[np.searchsorted(slots, lines.slots[lines.kinds == PURCHASE])] = True
        product_moment = purchase_moment.copy()
        product_moment[np.searchsorted(slots, lines.slots[lines.kinds == CANCELLATION])] = True
        slots, moments, purchase_moment = (
            slots[product_moment],
            moments[product_moment],
            purchase_moment[product_moment],
        )
        book.as_of[slots] = moments
        book.mark(slots, DECISION)
        scored = scoreable(columns, slots)
        rows, times = slots[scored], moments[scored]
        if not len(rows):
            return
        features = features_matrix(columns, rows, times)
        vectors = self.model.vectors(features)
        centroids = self.model.centroids
        nearest = nearest_centroid(vectors, centroids)
        assigned = self.model.ids(nearest)
        distance = distance_to(vectors, centroids, nearest)
        published = book.published[rows]
        published_rows = self.model.rows(published)
        margin = np.where(
            published == NO_SEGMENT,
            0.0,
            np.where(
                published_rows >= 0, distance_to(vectors, centroids, np.maximum(published_rows, 0)) - distance, np.inf
            ),
        )
        publish = self.policy.after_event(published, assigned, margin)
        for row, moment, before, after, gap, vector in zip(
            rows.tolist(),
            times.tolist(),
            book.segment[rows].tolist(),
            assigned.tolist(),
            distance.tolist(),
            vectors.tolist(),
            strict=True,
        ):
            self._observed_by(int(book.partition[row])).assignment(
                from_micros(moment), book.ids[row], None if before == NO_SEGMENT else before, after, gap, vector
            )
        book.segment[rows] = assigned
        book.pending_segment[rows] = NO_SEGMENT
        book.pending_count[rows] = 0
        purchases = purchase_moment[scored]
        for i in np.flatnonzero(publish).tolist():
            reason: ChangeReason = "purchase" if purchases[i] else "cancellation"
            if published[i] == NO_SEGMENT:
                reason = "first_purchase"
            self._publish(int(rows[i]), reason, int(times[i]), features[i], float(margin[i]), commits)

    def _observe_invoices(self, lines: StepLines, slots: np.ndarray, previous: np.ndarray) -> None:
        """Completed purchase invoices for the drift monitor: each moment holds whole invoices."""
        purchases = np.flatnonzero(lines.kinds == PURCHASE)
        if not len(purchases):
            return
        totals: dict[tuple[int, str], list[float]] = {}
        records = lines.records
        for slot, invoice, amount, moment in zip(
            lines.slots[purchases].tolist(),
            records.invoice_no[purchases].tolist(),
            (records.quantity[purchases] * records.price[purchases]).tolist(),
            lines.effective[purchases].tolist(),
            strict=True,
        ):
            entry = totals.setdefault((slot, invoice), [0.0, 0, moment])
            entry[0] += amount
            entry[1] += 1
        previous_of = dict(zip(slots.tolist(), previous.tolist(), strict=True))
        for (slot, _), (value, count, moment) in totals.items():
            before = previous_of[slot]
            days = None if before == NO_TIME else (moment - before) / 1_000_000 / SECONDS_PER_DAY
            self._observed_by(int(self.book.partition[slot])).invoice(
                from_micros(moment), self.book.ids[slot], value, int(count), days
            )

    def _observed_by(self, partition: int) -> Observations:
        observed = self._observed.get(partition)
        if observed is None:
            observed = self._observed[partition] = Observations()
        return observed

    # -- publishing -----------------------------------------------------------------------------
    def _publish(
        self, row: int, reason: ChangeReason, moment: int, features: np.ndarray, margin: float, commits: dict
    ) -> None:
        """Publish the customer's assigned segment: bump its sequence, queue the change event."""
        book = self.book
        partition = int(book.partition[row])
        before = int(book.published[row])
        self._published_before.setdefault(row, before)
        generation = self.generations.get(partition, 0)
        sequence = max(int(book.seq[row]), generation * GENERATION_SPAN) + 1
        segment = int(book.segment[row])
        book.published[row] = segment
        book.published_at[row] = moment
        book.seq[row] = sequence
        book.mark(np.array([row]), DECISION)
        names = self.previous_names | self.model.names
        change = SegmentChange(
            customer_id=book.ids[row],
            previous=None if before == NO_SEGMENT else SegmentRef(id=before, name=names.get(before, "")),
            current=SegmentRef(id=segment, name=self.model.names[segment]),
            model_version=self.model.version,
            event_time=from_micros(moment),
            reason=reason,
            features=dict(zip(FEATURE_NAMES, features.tolist(), strict=True)),
            distance_margin=0.0 if not np.isfinite(margin) else margin,
            sequence=sequence,
        )
        commits[partition].changes.append(change.model_dump_json())
        commits[partition].count(f"changes_{reason}")

    # -- the daily sweep --------------------------------------------------------------------------
    def _sweep(self, tick: int, commits: dict[int, PartitionCommit]) -> None:
        """One pass of a midnight's sweep over the owned partitions not past it yet.

        Every customer is moved to the midnight and assigned to the centroids of the
        pass before; its partition's statistics are counted from that. Only the last
        pass decides: it stores the segments, and publishes confirmed inactivity
        switches.
        """
        started = time.perf_counter()
        scope = sorted(p for p in self.owned if self.swept_at(p) < tick)
        if not scope:
            return
        midnight = day_start(tick)
        self._use_centroids(self.ticks.previous(tick))
        centroids = self.model.centroids
        book = self.book
        rows = np.flatnonzero(np.isin(book.partition[: len(book)], scope))
        rows = rows[scoreable(book.aggregates, rows)]
        features, vectors = self._midnight_vectors(midnight, rows)
        step = day_step(vectors, book.partition[rows].astype(np.int64), scope, centroids)
        for partition, stats in step.own.items():
            self._keep_statistics(partition, tick, stats, commits[partition])
        if self.ticks.is_final(tick):
            self._decide_at_midnight(midnight, rows, features, vectors, step.rows, centroids, commits)
            for partition in scope:
                commits[partition].count("sweeps")
        self.sweep_seconds.append(time.perf_counter() - started)

    def _midnight_vectors(self, midnight: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features and vectors of ``rows`` at ``midnight``, computed once for a midnight's passes."""
        cached = self._at_midnight
        if cached is not None and cached[0] == midnight and np.array_equal(cached[1], rows):
            return cached[2], cached[3]
        features = features_matrix(self.book.aggregates, rows, np.full(len(rows), midnight))
        vectors = self.model.vectors(features)
        self._at_midnight = (midnight, rows, features, vectors)
        return features, vectors

    def _decide_at_midnight(
        self,
        midnight: int,
        rows: np.ndarray,
        features: np.ndarray,
        vectors: np.ndarray,
        assigned: np.ndarray,
        centroids: np.ndarray,
        commits: dict[int, PartitionCommit],
    ) -> None:
        """The last pass's assignment becomes the customers' segments; inactivity switches are confirmed."""
        book = self.book
        before = self.model.rows(book.segment[rows])
        moved = np.flatnonzero(assigned != before)
        book.segment[rows[moved]] = self.model.ids(assigned[moved])
        book.as_of[rows[moved]] = midnight
        book.mark(rows[moved], DECISION)
        published = book.published[rows]
        published_rows = self.model.rows(published)
        distance = distance_to(vectors, centroids, np.maximum(assigned, 0))
        to_published = distance_to(vectors, centroids, np.maximum(published_rows, 0))
        margin = np.where(published_rows >= 0, to_published - distance, np.inf)
        pending_before = Pending(book.pending_segment[rows], book.pending_count[rows])
        publish, pending = self.policy.at_sweep(
            published,
            book.segment[rows],
            margin,
            pending_before,
            book.published_at[rows],
            midnight,
        )
        changed = (pending.segment != pending_before.segment) | (pending.count != pending_before.count)
        book.pending_segment[rows] = pending.segment
        book.pending_count[rows] = pending.count
        book.mark(rows[changed], PENDING)
        for i in np.flatnonzero(publish).tolist():
            row = int(rows[i])
            book.as_of[row] = midnight
            self._publish(row, "inactivity", midnight, features[i], float(margin[i]), commits)
        for partition, n_moved in zip(*np.unique(book.partition[rows[moved]], return_counts=True), strict=True):
            commits[int(partition)].count("sweep_moves", int(n_moved))

    def _keep_statistics(self, partition: int, tick: int, stats: Statistics, commit: PartitionCommit) -> None:
        """A partition's statistics after sweep pass ``tick``: kept for the next passes, and written with the commit."""
        kept = self.own_stats.setdefault(partition, {})
        kept[tick] = stats
        oldest = tick - KEPT_DAYS * MICROS_PER_DAY
        for old in [old for old in kept if old < oldest]:
            del kept[old]
        mapping = stats.to_mapping(self.model.segment_ids.tolist()) | {
            AS_OF_FIELD: iso(day_start(tick)),
            VERSION_FIELD: str(self.model.version),
        }
        if self.ticks.is_final(tick):
            commit.stats = mapping
        commit.day_stats[tick] = mapping
        # Redis keeps the passes of the last KEPT_DAYS days only, whatever the batching: a
        # commit that sweeps many days writes only those, and drops the day that fell out.
        forgotten = day_start(oldest)
        for old in [old for old in commit.day_stats if day_start(old) <= forgotten]:
            del commit.day_stats[old]
        commit.day_stats_drop.extend(forgotten + n for n in range(1, self.ticks.passes + 1))
        commit.swept = tick
        self.swept[partition] = tick
        if tick == self.centroids_tick:
            self.centroids_tick = NO_TIME

    # -- writing ---------------------------------------------------------------------------------
    def finish(self, commits: dict[int, PartitionCommit]) -> None:
        """Put every changed record, popularity and drift observations into ``commits``; start afresh."""
        book = self.book
        dirty = book.dirty_rows()
        flags = book.dirty[dirty]
        decided = dirty[(flags & DECISION) != 0]
        features = np.full((len(decided), len(FEATURE_NAMES)), np.nan)
        vectors = features.copy()
        has = scoreable(book.aggregates, decided)
        if has.any():
            features[has] = features_matrix(book.aggregates, decided[has], book.as_of[decided[has]])
            vectors[has] = self.model.vectors(features[has])
        pending = dict(
            zip(
                dirty.tolist(),
                map(pending_text, book.pending_segment[dirty].tolist(), book.pending_count[dirty].tolist()),
                strict=True,
            )
        )
        decided_rows = decided.tolist()
        columns = decision_columns(
            features,
            vectors,
            book.as_of[decided].tolist(),
            book.segment[decided].tolist(),
            book.published[decided].tolist(),
            book.published_at[decided].tolist(),
            book.seq[decided].tolist(),
            [pending[row] for row in decided_rows],
        )
        names = list(columns)
        decision = {
            row: dict(zip(names, values, strict=True))
            for row, values in zip(decided_rows, zip(*columns.values(), strict=True), strict=True)
        }
        changed = dirty[(flags & AGG) != 0]
        aggregates = dict(zip(changed.tolist(), book.aggregates.packed(changed), strict=True))
        ids = book.ids
        for row, flag, partition in zip(dirty.tolist(), flags.tolist(), book.partition[dirty].tolist(), strict=True):
            fields: dict[str, str | bytes] = {}
            if flag & AGG:
                fields |= aggregates[row]
            if flag & DECISION:
                fields |= decision[row]
            else:
                fields["pending"] = pending[row]
            commits[partition].records[ids[row]] = fields
        book.clean(dirty)
        self._popularity(commits)
        self._observations(commits)

    def _popularity(self, commits: dict[int, PartitionCommit]) -> None:
        book = self.book
        for row, before in self._published_before.items():
            after = int(book.published[row])
            if before != after:
                commits[int(book.partition[row])].moves.append((book.ids[row], before, after))
        rows = np.fromiter((row for row, _ in self._units), dtype=np.int64, count=len(self._units))
        for ((_, code), units), segment, partition in zip(
            self._units.items(), book.published[rows].tolist(), book.partition[rows].tolist(), strict=True
        ):
            if segment == NO_SEGMENT or not units:
                continue
            products = commits[partition].products.setdefault(segment, {})
            products[code] = products.get(code, 0) + units
        for commit in commits.values():
            commit.products = {s: {c: n for c, n in units.items() if n} for s, units in commit.products.items()}
            commit.products = {s: units for s, units in commit.products.items() if units}
        self._published_before = {}
        self._units = {}

    def _observations(self, commits: dict[int, PartitionCommit]) -> None:
        for partition, observed in self._observed.items():
            commit = commits[partition]
            commit.observations.append(
                observed.encode(partition, max(commit.offset, 0), from_micros(max(commit.clock, 0)), self.model.version)
            )
        self._observed = {}

    def expire(self, commit: PartitionCommit, before: int, after: int) -> None:
        """Dedup and guest-invoice day sets that fell out of the retention as the partition's clock moved."""
        if before == NO_TIME or after <= before:
            return
        retention = self.dedup_retention_days * MICROS_PER_DAY
        day = before - before % MICROS_PER_DAY - retention
        while day < after - after % MICROS_PER_DAY - retention:
            commit.seen_drop.append(event_day(day))
            commit.guest_drop.append(event_day(day))
            day += MICROS_PER_DAY

    def switch(
        self, model: SegmentModel, at: int, commits: dict[int, PartitionCommit], partitions: Iterable[int] | None = None
    ) -> int:
        """Adopt a new model version (a refresh): the customers re-scored as of ``at``, no debounce.

        A refresh is a deliberate relabelling, so the published segment follows the
        new assignment at once, with one ``model_refresh`` change per customer whose
        segment id changed (committed with the new statistics, so a restart neither
        repeats nor skips it). ``partitions`` (default: every owned one) limits it to
        partitions whose state is still on an older version, as when a refresh ran
        while no worker owned them. Returns how many customers were re-scored.
        """
        if model.version != self.model.version:
            self.previous_names |= self.model.names
            self.model = model
            self.fallback = None
            self.own_stats = {}
            self.centroids_tick = NO_TIME
            self.model.centroids = model.initial.copy()
        scope = sorted(self.owned if partitions is None else set(partitions))
        book = self.book
        rows = np.flatnonzero(np.isin(book.partition[: len(book)], scope))
        rows = rows[scoreable(book.aggregates, rows)]
        features = features_matrix(book.aggregates, rows, np.full(len(rows), at))
        vectors = self.model.vectors(features)
        centroids = self.model.initial
        assigned = nearest_centroid(vectors, centroids) if len(rows) else np.zeros(0, dtype=np.int64)
        book.segment[rows] = self.model.ids(assigned)
        book.as_of[rows] = at
        book.pending_segment[rows] = NO_SEGMENT
        book.pending_count[rows] = 0
        book.mark(rows, DECISION)
        published_rows = self.model.rows(book.published[rows])
        distance = distance_to(vectors, centroids, assigned)
        margin = np.where(
            published_rows >= 0,
            distance_to(vectors, centroids, np.maximum(published_rows, 0)) - distance,
            0.0,
        )
        for i in np.flatnonzero(book.published[rows] != book.segment[rows]).tolist():
            self._publish(int(rows[i]), "model_refresh", at, features[i], float(margin[i]), commits)
        for partition in scope:
            # The new version's statistics where the partition stands: its customers at its last midnight.
            swept = self.swept_at(partition)
            midnight = day_start(swept)
            members = rows[(book.partition[rows] == partition) & (book.aggregates.first_purchase[rows] <= midnight)]
            at_midnight = self.model.vectors(features_matrix(book.aggregates, members, np.full(len(members), midnight)))
            step = day_step(at_midnight, np.full(len(members), partition, dtype=np.int64), [partition], centroids)
            self._keep_statistics(partition, swept, step.own[partition], commits[partition])
            commits[partition].count("model_switch_rescored", len(members))
        return len(rows)

    # -- ownership ---------------------------------------------------------------------------------
    def release(self, partitions: Iterable[int]) -> None:
        partitions = set(partitions)
        self.book.release(partitions)
        self.owned -= partitions
        for partition in partitions:
            self.generations.pop(partition, None)
            self.swept.pop(partition, None)
            self.own_stats.pop(partition, None)
        self.centroids_tick = NO_TIME
