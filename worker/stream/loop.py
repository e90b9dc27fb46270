"""The consume loop: fetch, align in event time, read once, apply, commit per partition, publish.

A :class:`Worker` composes its parts in :meth:`Worker.run` (nothing connects in
``__init__``) and, per step:

1. takes the records the fetcher process brought and decoded (:mod:`worker.stream.fetcher`,
   :mod:`worker.stream.decode`) and hands them to the event-time
   aligner (:mod:`worker.stream.alignment`), which releases what may be applied
   now, in (time, partition, offset) order;
2. reads what the step needs from Redis in one pipeline (:mod:`worker.stream.reads`);
3. applies it (:mod:`worker.stream.processor`): dedup, fold, a scoring decision per
   customer event, daily sweeps;
4. lands one atomic, fenced commit per partition (:mod:`worker.stream.checkpoint`) in
   the background (:mod:`worker.stream.inflight`); once it has landed, commits its
   offsets to Kafka (with the sequence generation, :mod:`worker.stream.ownership`),
   then publishes its outbox and waits for every ack (:mod:`worker.stream.outbox`).

Whatever fails on one record dead-letters that record (with the stage and the
error) and the step goes on; only infrastructure failures (Redis, Kafka) retry or
reload. Nothing is ever applied twice: the offsets that say where to resume are
written in the same step as the state.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType

import numpy as np
import redis
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from threadpoolctl import threadpool_limits

from shared.contracts.invoice import GUEST_KEY_PREFIX
from shared.exceptions import ConfigError, FencedError, FetcherExitedError, MisroutedError, OffsetsBeyondLogError
from shared.features.clock import MICROS_PER_DAY, NO_TIME, day_start, iso, to_micros
from shared.kafka_clients import ensure_topics, make_consumer, make_producer
from shared.partitioner import partition_of
from shared.redaction import redact
from shared.redis_client import authentication_failed, make_redis
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import bootstrap_meta
from shared.state.model_stats import VERSION_FIELD, DayStatistics
from shared.state.model_store import load_version, require_current
from worker.observability.observer import Observer
from worker.segmentation.model import SegmentModel
from worker.segmentation.publish_policy import PublishPolicy
from worker.segmentation.sweep_ticks import SweepTicks
from worker.stream.alignment import NEVER, EventAligner
from worker.stream.book import CustomerBook
from worker.stream.checkpoint import Checkpoint, PartitionCommit
from worker.stream.dead_letter import dead_letter
from worker.stream.decode import Records, Refused
from worker.stream.fetcher import FetchedBatch, Fetcher
from worker.stream.inflight import InflightCommit
from worker.stream.outbox import Outbox
from worker.stream.ownership import Owned, claim, load_partition, metadata
from worker.stream.processor import Processor
from worker.stream.reads import Landing, StepReader
from worker.stream.settings import WorkerSettings

log = logging.getLogger("worker")
GROUP_POLL_S = 1.0
WAITING_POLL_S = 0.02  # fetcher poll while records wait for another worker's sweep


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker.on_revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.worker.on_assigned({tp.partition for tp in assigned})


@dataclass
class Landed:
    """A step's commits on their way: what Kafka's offsets, the outbox and the next dedup check need."""

    commits: list[PartitionCommit]
    landing: Landing = field(default_factory=Landing)


@dataclass
class Parts:
    """Everything the worker connects to, made in :meth:`Worker.run`."""

    redis: redis.Redis
    checkpoint: Checkpoint
    reader: StepReader
    producer: KafkaProducer
    consumer: KafkaConsumer
    fetcher: Fetcher
    outbox: Outbox
    observer: Observer


class Worker:
    """One member of the worker group; owns the customers of its assigned partitions."""

    def __init__(self, settings: Settings, options: WorkerSettings) -> None:
        self.settings = settings
        self.options = options
        self.topic = settings.topics.invoices
        self.keys = Keys(settings.redis.key_prefix)
        self.stopping = False
        self.caught_up = False
        self.batches = 0
        self.records = 0
        self.first_batch_at: float | None = None
        self.finished_at: float | None = None
        self.owned: dict[int, Owned] = {}
        self.to_assign: set[int] = set()
        self.group_polled_at = 0.0
        self.reclaim_at: float | None = None  # after a fence: when to claim the assignment again
        self.waiting = False  # records held until another worker's partitions are swept
        self.expected: dict[int, int] = {}  # per partition: the offset the next commit starts from
        self.inflight: InflightCommit[Landed] = InflightCommit()
        self.landed: list[PartitionCommit] = []  # landed in Redis, offsets not committed to Kafka yet
        self.unpublished: list[PartitionCommit] = []  # landed, offsets committed, messages not sent yet
        self.fetcher_delay = options.retry_initial_s
        self.model_checked_at = time.monotonic()
        self.aligner = self._aligner()
        self.parts: Parts | None = None
        self.processor: Processor | None = None

    # -- composition ------------------------------------------------------------------------------
    def _aligner(self) -> EventAligner:
        return EventAligner(
            future_tolerance_us=int(self.options.future_tolerance_days * MICROS_PER_DAY),
            lateness_limit_us=self.options.dedup_retention_days * MICROS_PER_DAY,
            quiet_after_s=self.options.quiet_after_s,
        )

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Parts]:
        settings, options = self.settings, self.options
        client = make_redis(settings.redis)
        self.meta = bootstrap_meta(client, self.keys)
        ensure_topics(
            settings.kafka,
            [self.topic, settings.topics.segment_changes, settings.topics.dead_letter],
            settings.topics.partitions,
            settings.topics.replication_factor,
        )
        ensure_topics(settings.kafka, [settings.topics.drift_observations], 1, settings.topics.replication_factor)
        producer = make_producer(settings.kafka)
        consumer = make_consumer(settings.kafka, options.group_id)
        fetcher = Fetcher(settings, self.topic, options.batch_max_records, options.fetch_partition_bytes)
        observer = Observer(options.metrics_port, options.metrics_host, options.liveness_timeout_s, self._segments)
        parts = Parts(
            redis=client,
            checkpoint=Checkpoint(client, self.keys, self.topic),
            reader=StepReader(client, self.keys),
            producer=producer,
            consumer=consumer,
            fetcher=fetcher,
            outbox=Outbox(
                client,
                self.keys,
                producer,
                settings.topics,
                options.publish_timeout_s,
                options.retry_initial_s,
                options.retry_max_s,
                lambda: self.stopping,
            ),
            observer=observer,
        )
        self.parts = parts
        try:
            self.processor = self._new_processor()
            yield parts
        finally:
            with contextlib.suppress(Exception):
                consumer.close()  # its last revocation still orders the fetcher
            fetcher.close()
            with contextlib.suppress(Exception):
                producer.close(timeout=options.publish_timeout_s)
            observer.close()
            self.inflight.close()

    def _new_processor(self) -> Processor:
        """A processor owning nothing yet, under the live model."""
        assert self.parts is not None
        client = self.parts.redis
        snapshot = require_current(client, self.keys)
        cutoff = client.get(self.keys.cutoff)
        self.cutoff = to_micros(datetime.fromisoformat(cutoff)) if cutoff else NO_TIME
        partitions = int(self.meta["partitions"])
        return Processor(
            book=CustomerBook(),
            model=SegmentModel(snapshot),
            policy=PublishPolicy(
                margin=self.options.publish_margin,
                confirm_sweeps=self.options.confirm_sweeps,
                dwell_us=int(self.options.inactivity_dwell_days * MICROS_PER_DAY),
            ),
            dedup_retention_days=self.options.dedup_retention_days,
            ticks=SweepTicks(self.options.sweep_passes),
            base=day_start(self.cutoff) if self.cutoff != NO_TIME else NO_TIME,
            partition_count=partitions,
        )

    def _segments(self) -> tuple[dict[int, str], np.ndarray, np.ndarray]:
        processor = self.processor
        if processor is None:
            return {}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        n = len(processor.book)
        return processor.model.names, processor.book.segment[:n].copy(), processor.book.published[:n].copy()

    # -- partition ownership ---------------------------------------------------------------------
    def on_assigned(self, partitions: set[int]) -> None:
        """Rebalance callback (the consumer's IO thread): only note them; the loop takes them over."""
        self.to_assign |= partitions

    def _take_assigned(self) -> None:
        if self.to_assign:
            partitions, self.to_assign = self.to_assign, set()
            self._with_retry(lambda: self._assign(partitions))

    def _assign(self, partitions: set[int]) -> None:
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        self._land()
        count = len(parts.consumer.partitions_for_topic(self.topic) or ())
        if count != processor.partition_count:
            raise ConfigError(
                f"topic {self.topic!r} has {count} partitions but the state in Redis was laid out for "
                f"{processor.partition_count} (bootstrap): customers would be looked up in the wrong partitions. "
                "Re-bootstrap with SEG_TOPICS__PARTITIONS matching the topic"
            )
        parts.consumer.pause(*[TopicPartition(self.topic, p) for p in partitions if p in self._assignment()])
        loaded = 0
        for partition in sorted(partitions):
            owned = claim(parts.checkpoint, parts.consumer, self.topic, partition, processor.ticks)
            self.owned[partition] = owned
            self.expected[partition] = owned.offset
            processor.generations[partition] = owned.generation
            parts.outbox.drain(partition)
            loaded += load_partition(parts.redis, self.keys, partition, processor.book)
            stored = owned.clock if owned.clock != NO_TIME else self.cutoff
            owned = Owned(owned.epoch, owned.generation, owned.offset, stored, owned.swept)
            self.owned[partition] = owned
            # Records before its last sweep's midnight are all applied: the partition's time is there at
            # least. The stored clock stays the start of the next expiry (day sets between the two too).
            self.aligner.own(partition, max(owned.offset, 0), max(stored, day_start(owned.swept)))
            processor.own_loaded(partition, owned.swept, self._stored_statistics(partition, owned.swept))
        processor.owned |= partitions
        processor.use_fallback(parts.redis.hgetall(self.keys.model_stats))
        parts.fetcher.assign({p: self.owned[p].offset for p in self.owned})
        parts.observer.assigned(partitions)
        log.info("assigned partitions %s: %d customers loaded", sorted(partitions), loaded)
        stale = self._on_older_model(partitions)
        if stale:
            commits = {p: PartitionCommit(p) for p in self.owned}
            self._switch_model(processor.model.version, commits, stale)
            self._finish(commits)

    def _on_older_model(self, partitions: set[int]) -> set[int]:
        """Partitions whose statistics predate the live model: a refresh ran while nobody owned them."""
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        pipe = parts.redis.pipeline(transaction=False)
        for partition in sorted(partitions):
            pipe.hget(self.keys.stats(partition), VERSION_FIELD)
        versions = dict(zip(sorted(partitions), pipe.execute(), strict=True))
        return {p for p, v in versions.items() if v is not None and v != str(processor.model.version)}

    def _assignment(self) -> set[int]:
        assert self.parts is not None
        return {tp.partition for tp in self.parts.consumer.assignment()}

    def _stored_statistics(self, partition: int, swept: int) -> dict[int, DayStatistics]:
        """A partition's statistics after its last sweep passes, as its previous owner stored them."""
        processor = self.processor
        assert processor is not None
        if swept == NO_TIME:
            return {}
        return self._statistics_at([(partition, tick) for tick in processor.kept_ticks(swept)])

    def _statistics_at(self, wanted: list[tuple[int, int]]) -> dict[int, DayStatistics]:
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        pipe = parts.redis.pipeline(transaction=False)
        for partition, tick in wanted:
            pipe.hgetall(self.keys.sweep_stats(partition, tick))
        model = processor.model
        return {
            tick: DayStatistics.parse(raw, model.segment_ids.tolist(), model.dimensions, model.version)
            for (_, tick), raw in zip(wanted, pipe.execute(), strict=True)
            if raw
        }

    def on_revoked(self, partitions: set[int]) -> None:
        """Rebalance callback: let the commit in flight finish, then forget the partitions (no consumer calls here)."""
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        self.to_assign -= partitions
        self.inflight.wait()
        with contextlib.suppress(FencedError, redis.exceptions.RedisError):
            landed = self.inflight.settle()
            if landed is not None:
                self.landed.extend(landed.commits)
        processor.release(partitions)
        self.aligner.release_partitions(partitions)
        for partition in partitions:
            self.owned.pop(partition, None)
            self.expected.pop(partition, None)
            parts.outbox.forget(partition)
        parts.observer.revoked(partitions)
        parts.fetcher.assign({p: self.expected.get(p, -1) for p in self.owned})
        log.info("revoked partitions %s", sorted(partitions))

    # -- the loop ---------------------------------------------------------------------------------
    def stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Finish the current step, commit, leave the group."""
        self.stopping = True

    def run(self, until_caught_up: bool = False) -> None:
        """Consume until stopped; with ``until_caught_up`` (tests, benchmarks, one-off catch-up runs),
        stop once every partition of the topic has been applied up to its end offset."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        # The matrices are small (customers x features); BLAS threads cost more to hand off to
        # than the products take, and spin on the cores the broker and Redis need.
        with self._connected() as parts, threadpool_limits(limits=1, user_api="blas"):
            parts.consumer.subscribe([self.topic], listener=_Rebalance(self))
            try:
                while not self.stopping:
                    self._group_duties()
                    polled = self._fetch() if self.owned else {}
                    parts.observer.polled(parts.fetcher.highwater, {p: o.offset for p, o in self.owned.items()})
                    flush = until_caught_up and self._all_fetched()
                    if polled or self.aligner.held() or self._behind():
                        if polled and self.first_batch_at is None:
                            self.first_batch_at = time.monotonic()
                        self._step(polled, flush)
                    else:
                        self._with_retry(self._idle)
                    if until_caught_up:
                        self._with_retry(self._check_caught_up)
                        if self.caught_up:
                            break
                self.finished_at = time.monotonic()
                self._with_retry(self._idle)
            finally:
                log.info("worker stopped after %d batches", self.batches)

    def _group_duties(self) -> None:
        """Poll the group member (its partitions are paused): joins, rebalances, commits.

        Not at every step: kafka-python's poll waits on its network thread for tens of
        milliseconds even with a zero timeout, and heartbeats run in the background;
        once a second keeps rebalances prompt and the session alive.
        """
        parts = self.parts
        assert parts is not None
        now = time.monotonic()
        if self.owned and now - self.group_polled_at < GROUP_POLL_S:
            return
        self.group_polled_at = now
        parts.consumer.poll(timeout_ms=0 if self.owned else self.options.poll_timeout_ms)
        if not self.owned and not self.to_assign and self.reclaim_at is not None and now > self.reclaim_at:
            self.to_assign = self._assignment()
        if self.to_assign:
            self.reclaim_at = None
        self._take_assigned()

    def _step(self, polled: dict[int, FetchedBatch], flush: bool) -> None:
        # A step allocates many short-lived objects that reference counting frees; the cyclic
        # collector would walk them over and over, so it waits for the step to end.
        gc.disable()
        try:
            self._with_retry(lambda: self.process(polled, flush))
        finally:
            gc.enable()
        gc.freeze()

    def _fetch(self) -> dict[int, FetchedBatch]:
        """The next batch from the fetcher; a fetcher that died is replaced, with backoff."""
        parts = self.parts
        assert parts is not None
        parts.fetcher.pause(self.aligner.crowded(self.options.held_records_limit))
        try:
            # Waiting for another worker's sweep: look again soon rather than after a whole poll timeout.
            polled = parts.fetcher.poll(WAITING_POLL_S if self.waiting else self.options.poll_timeout_ms / 1000)
        except FetcherExitedError as exc:
            log.error("%s; starting a new one in %.1f s from the applied offsets", exc, self.fetcher_delay)
            parts.fetcher.close()
            time.sleep(self.fetcher_delay)
            self.fetcher_delay = min(self.fetcher_delay * 2, self.options.retry_max_s)
            parts.fetcher = Fetcher(
                self.settings, self.topic, self.options.batch_max_records, self.options.fetch_partition_bytes
            )
            self.aligner = self._restart_lanes()
            parts.fetcher.assign({p: self.expected.get(p, -1) for p in self.owned})
            return {}
        if polled:
            self.fetcher_delay = self.options.retry_initial_s
        for partition, mark in parts.fetcher.highwater.items():
            if partition in self.aligner.lanes:
                self.aligner.accept(partition, Records.empty(), 0, mark)
        beyond = {
            p: lane.fetched_end for p, lane in self.aligner.lanes.items() if 0 <= lane.highwater < lane.fetched_end
        }
        if beyond:
            raise OffsetsBeyondLogError(beyond)
        return polled

    def _restart_lanes(self) -> EventAligner:
        """Held records are dropped with the fetcher that brought them: the new one fetches them again."""
        aligner = self._aligner()
        for partition, (offset, clock) in self.aligner.positions().items():
            aligner.own(partition, offset, clock)
        return aligner

    # -- one step --------------------------------------------------------------------------------
    def process(self, polled: dict[int, FetchedBatch], flush: bool = False) -> None:
        """Apply what the fetcher brought, and whatever the event-time order now releases, exactly once."""
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        started = time.perf_counter()
        commits = {p: PartitionCommit(p) for p in self.owned}
        consumed = 0
        for partition, fetched in sorted(polled.items()):
            if partition not in self.owned:
                continue
            consumed += len(fetched.offsets)
            self._take(partition, fetched, commits[partition])
        remote = self._remote_progress()
        limit = self._records_limit(remote)
        cap = processor.sweep_cap()
        if cap is not None:  # records after the last midnight this step may sweep wait for the next step
            limit = min(limit, day_start(cap) + MICROS_PER_DAY)
        released = self.aligner.release(flush, limit)
        self.waiting = limit != NEVER and self.aligner.held()
        sweep_until = self._sweep_until(flush, remote)
        if cap is not None:
            sweep_until = min(sweep_until, cap)
        first = min(processor.swept_at(p) for p in self.owned)
        needed = [first, *processor.ticks.between(first, sweep_until)] if first != NO_TIME else []
        wanted = [(q, tick) for q in remote for tick in needed]
        landing = self.inflight.landing.landing if self.inflight.landing is not None else Landing()
        reads = parts.reader.read(released.records, wanted, landing, answered=self.inflight.release)
        if reads.model_version is not None and reads.model_version != processor.model.version:
            self._switch_model(reads.model_version, commits)
        model = processor.model
        processor.use_fallback(reads.model_stats)
        processor.use_remote(
            {
                entry: DayStatistics.parse(raw, model.segment_ids.tolist(), model.dimensions, model.version)
                for entry, raw in reads.day_stats.items()
            }
        )
        processor.step(released, reads, commits, sweep_until)
        self._finish(commits)
        self.batches += 1
        self.records += consumed
        parts.observer.metrics.batch_done(
            consumed,
            time.perf_counter() - started,
            _summed(commits),
            sum(len(c.changes) for c in commits.values()),
            processor.sweep_seconds,
        )

    def _behind(self) -> bool:
        """Other workers swept further than this one's partitions (which may have to follow, see _sweep_until)."""
        processor = self.processor
        assert processor is not None
        remote = self._remote_progress() if self.owned else {}
        return bool(remote) and min(processor.swept_at(p) for p in self.owned) < max(remote.values())

    def _remote_progress(self) -> dict[int, int]:
        """Per partition this worker does not own: the tick of its last sweep pass (the bootstrap's before any)."""
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        remote = [p for p in range(processor.partition_count) if p not in self.owned]
        if not remote:
            return {}
        progress = {}
        for partition, (midnight, sweep_pass) in parts.reader.progress(remote).items():
            if midnight == NO_TIME:
                progress[partition] = processor.base_tick
            else:
                progress[partition] = midnight + sweep_pass if sweep_pass else processor.ticks.final(midnight)
        return progress

    def _records_limit(self, remote: dict[int, int]) -> int:
        """Records before this time may be applied: every other partition has the centroids of their day."""
        processor = self.processor
        assert processor is not None
        if not remote:
            return NEVER
        slowest = min(remote.values())
        midnight = day_start(slowest)
        return midnight + MICROS_PER_DAY if processor.ticks.is_final(slowest) else midnight

    def _sweep_until(self, flush: bool, remote: dict[int, int]) -> int:
        """The last sweep pass the owned partitions may run now (a tick).

        Every record before its midnight must be applied (the low watermark is
        past it), and every other partition must have run the pass before it. A
        worker whose partitions are all quiet, or fetched to their end at the end
        of a catch-up, follows the others' sweeps, so they are not held back by
        partitions that have nothing more to say.
        """
        processor = self.processor
        assert processor is not None
        watermark = self.aligner.low_watermark(flush)
        reached = self.aligner.reached()
        until = min(watermark, reached) if reached != NO_TIME else NO_TIME
        target = processor.ticks.final(day_start(until)) if until != NO_TIME else NO_TIME
        if not remote:
            return target
        if watermark == NEVER:
            target = max(target, max(remote.values()))
        return min(target, processor.ticks.following(min(remote.values())))

    def _take(self, partition: int, fetched: FetchedBatch, commit: PartitionCommit) -> None:
        """Hand a partition's decoded records to the aligner; refused ones are dead-lettered."""
        lane = self.aligner.lanes[partition]
        first = bisect.bisect_left(fetched.offsets, lane.fetched_end)
        commit.count("redelivered_skipped", first)
        if first == len(fetched.offsets):
            return
        start = lane.fetched_end
        records = fetched.records.take(slice(int(np.searchsorted(fetched.records.offset, start)), None))
        refused = [rejected for rejected in fetched.refused if rejected.offset >= start]
        records, misrouted = self._routed(partition, records)
        refused += misrouted
        if self.cutoff != NO_TIME:
            before = records.time < self.cutoff
            if before.any():
                commit.count("before_cutoff", int(before.sum()))
                records = records.take(np.flatnonzero(~before))
        refused += self.aligner.accept(partition, records, fetched.offsets[-1] + 1, None)
        for rejected in refused:
            if rejected.value is None:  # refused by time: its raw value is in the fetched batch
                index = bisect.bisect_left(fetched.offsets, rejected.offset)
                rejected = Refused(
                    rejected.partition,
                    rejected.offset,
                    fetched.keys[index],
                    fetched.values[index],
                    rejected.error,
                    rejected.stage,
                )
            commit.dead_letters.append(dead_letter(self.topic, rejected))
            commit.count(f"dead_lettered_{rejected.error.kind}")
            assert self.parts is not None
            self.parts.observer.dead_letter(rejected.partition, rejected.offset, rejected.error)

    def _routed(self, partition: int, records: Records) -> tuple[Records, list[Refused]]:
        """Records whose key belongs to another partition are refused: their customer's state lives there."""
        assert self.processor is not None
        count = self.processor.partition_count
        # Each key is hashed once per batch (customers repeat); the usual batch has none misplaced.
        present = set(records.customer_id)
        keys = {cid for cid in present if cid is not None}
        if None in present:
            ids = zip(records.customer_id, records.invoice_no, strict=True)
            keys.update(GUEST_KEY_PREFIX + invoice for cid, invoice in ids if cid is None)
        misplaced = {key for key in keys if partition_of(key, count) != partition}
        if not misplaced:
            return records, []
        wrong = [
            index
            for index, (cid, invoice) in enumerate(zip(records.customer_id, records.invoice_no, strict=True))
            if (cid if cid is not None else GUEST_KEY_PREFIX + invoice) in misplaced
        ]
        refused = []
        for index in wrong:
            key = records.customer_id[index] or "guest:" + records.invoice_no[index]
            error = MisroutedError(
                f"key {key!r} belongs to partition {partition_of(key, count)} of {count}, not {partition} "
                "(a producer that does not partition by murmur2, or a partition increase)",
                "customer_id",
            )
            refused.append(Refused(partition, int(records.offset[index]), None, None, error, "decode"))
        keep = np.setdiff1d(np.arange(len(records)), np.array(wrong))
        return records.take(keep), refused

    def _finish(self, commits: dict[int, PartitionCommit]) -> None:
        """Offsets and clocks from the aligner, records into the commits, then commit in the background."""
        processor = self.processor
        assert processor is not None
        for partition in self.owned:
            # A partition swept while it was quiet: its time is that midnight, later records count from there.
            self.aligner.advance(partition, day_start(processor.swept_at(partition)))
        for partition, (offset, clock) in self.aligner.positions().items():
            commit = commits[partition]
            before = self.owned[partition].clock
            commit.offset, commit.clock = offset, clock
            processor.expire(commit, before, clock)
            owned = self.owned[partition]
            self.owned[partition] = Owned(owned.epoch, owned.generation, offset, clock, processor.swept_at(partition))
        processor.finish(commits)
        changed = [c for c in commits.values() if c.offset != self.expected.get(c.partition) or _has_content(c)]
        if changed:
            self._commit(changed)

    def _commit(self, commits: list[PartitionCommit]) -> None:
        """Land ``commits`` in the background after the previous step's messages are published."""
        parts = self.parts
        assert parts is not None
        self._settle()
        commits = [commit for commit in commits if commit.partition in self.owned]  # a fence may have dropped some
        if not commits:
            return
        expected = dict(self.expected)
        epochs = {p: self.owned[p].epoch for p in self.owned}
        to_publish, self.unpublished = self.unpublished, []

        def land() -> None:
            parts.outbox.publish(to_publish)
            self.inflight.turn()  # the next step's read goes first
            for commit in commits:
                parts.checkpoint.commit(
                    commit, epochs[commit.partition], expected[commit.partition], parts.outbox.trims(commit.partition)
                )

        self.inflight.submit(land, Landed(commits, _landing(commits)))
        for commit in commits:
            self.expected[commit.partition] = commit.offset

    def _land(self) -> None:
        """Wait for the commit in flight and keep what it landed (safe inside a rebalance callback).

        A fenced commit means another worker owns a partition now: this one drops
        everything it holds and rejoins the group (:meth:`_rejoin`). A Redis failure
        is raised, for :meth:`_with_retry` to reload once Redis is back.
        """
        try:
            landed = self.inflight.settle()
        except FencedError as exc:
            log.warning(
                "%s; dropping what this worker holds and rejoining the group",
                exc,
                extra={"partition": exc.partition, "offset": exc.offset},
            )
            self._rejoin()
            return
        if landed is not None:
            self.landed.extend(landed.commits)

    def _settle(self) -> None:
        """Land the commit in flight, then commit its offsets to Kafka before anything of it is sent.

        Kafka's committed offset is then never ahead of what Redis holds unless Redis
        lost writes, which the next owner detects (:mod:`worker.stream.ownership`).
        """
        parts = self.parts
        assert parts is not None
        self._land()
        landed = [c for c in self.landed if c.partition in self.owned]
        self.landed = []
        offsets = {
            TopicPartition(self.topic, c.partition): OffsetAndMetadata(
                c.offset, metadata(self.owned[c.partition].generation), -1
            )
            for c in landed
        }
        if offsets:
            try:
                parts.consumer.commit(offsets)
            except CommitFailedError as exc:
                # Out of the group (a pause longer than the session): its messages stay in the
                # outbox, which the partitions' next owner sends.
                log.warning("the group no longer counts this worker as a member (%s); rejoining", exc)
                self._rejoin()
                return
            except KafkaError as exc:
                # Redis holds the offsets that count; Kafka's copy only lets a restart notice that
                # Redis went back. Left behind, it says nothing false, and the next commit catches up.
                log.warning("could not commit offsets to Kafka (%s); the next batch's commit retries", exc)
        self.unpublished.extend(landed)

    def _rejoin(self) -> None:
        """Forget every partition: another worker owns some now, or the group dropped this one.

        The group's next rebalance assigns partitions again (a worker paused past its
        session is revoked at its next poll). If none comes within a session timeout
        (the partitions were fenced by hand, e.g. ``reset-offsets``), the current
        assignment is claimed again.
        """
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        self.inflight.forget()
        self.landed, self.unpublished = [], []
        owned = set(self.owned)
        processor.release(owned)
        self.aligner.release_partitions(owned)
        for partition in owned:
            parts.outbox.forget(partition)
        parts.observer.revoked(owned)
        self.owned, self.expected = {}, {}
        parts.fetcher.assign({})
        self.reclaim_at = time.monotonic() + self.settings.kafka.session_timeout_ms / 1000

    def _idle(self) -> None:
        """Nothing fetched: land and publish what is pending; look for a new model now and then."""
        parts = self.parts
        assert parts is not None
        self._settle()
        if self.unpublished:
            to_publish, self.unpublished = self.unpublished, []
            parts.outbox.publish(to_publish)
        if time.monotonic() - self.model_checked_at > self.options.model_check_s and self.owned:
            self._check_model()

    def _check_model(self) -> None:
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        self.model_checked_at = time.monotonic()
        current = parts.redis.get(self.keys.model_current)
        if current is not None and int(current) != processor.model.version:
            commits = {p: PartitionCommit(p) for p in self.owned}
            self._switch_model(int(current), commits)
            self._finish(commits)
            self._settle()

    def _switch_model(
        self, version: int, commits: dict[int, PartitionCommit], partitions: set[int] | None = None
    ) -> None:
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        same = version == processor.model.version
        model = processor.model if same else SegmentModel(load_version(parts.redis, self.keys, version))
        at = max((lane.applied_clock for lane in self.aligner.lanes.values()), default=NO_TIME)
        if at == NO_TIME:
            at = self.cutoff
        rescored = processor.switch(model, at, commits, partitions)
        processor.use_fallback(parts.redis.hgetall(self.keys.model_stats))
        scope = f" in partitions {sorted(partitions)}" if partitions is not None else ""
        log.info("now on model v%d: %d customers re-scored%s as of %s", version, rescored, scope, iso(at))

    def _all_fetched(self) -> bool:
        return bool(self.owned) and all(lane.caught_up() for lane in self.aligner.lanes.values())

    def summary(self) -> dict[str, float]:
        """Throughput of this run, from the first polled batch to the end (printed by ``worker run``)."""
        end = self.finished_at or time.monotonic()
        elapsed = end - self.first_batch_at if self.first_batch_at is not None else 0.0
        return {
            "records": self.records,
            "batches": self.batches,
            "seconds_from_first_batch": round(elapsed, 3),
            "records_per_s": round(self.records / elapsed, 1) if elapsed else 0.0,
        }

    def _check_caught_up(self) -> None:
        """Set :attr:`caught_up` once every partition of the topic is applied to its end and its commit landed."""
        if self._caught_up():
            self._settle()
            self.caught_up = self._caught_up()

    def _caught_up(self) -> bool:
        """Every partition of the topic applied up to its end offset, by this worker or another.

        Not only the assigned ones: when a group member dies, its partitions are
        reassigned only after the session timeout, and a catch-up run must not
        end before they are applied too.
        """
        parts, processor = self.parts, self.processor
        assert parts is not None and processor is not None
        if not self.owned or self.aligner.held():
            return False
        if any(lane.highwater < 0 for lane in self.aligner.lanes.values()):
            return False  # the fetcher has not reported where an owned partition ends yet
        remote = self._remote_progress()
        if remote and min(processor.swept_at(p) for p in self.owned) < max(remote.values()):
            return False  # others swept further: follow them first (the same state as one worker's)
        partitions = [TopicPartition(self.topic, p) for p in range(processor.partition_count)]
        pipe = parts.redis.pipeline(transaction=False)
        for partition in range(processor.partition_count):
            pipe.hget(self.keys.checkpoint(partition), "offset")
        stored = {p: int(o) if o is not None else -1 for p, o in enumerate(pipe.execute())}
        stored |= {p: o for p, o in self.expected.items()}
        # Tansu's ListOffsets answers the start of the last record batch: owned partitions
        # take the larger of it and the high watermark their fetches reported.
        ends = {tp.partition: end for tp, end in parts.consumer.end_offsets(partitions).items()}
        for partition, lane in self.aligner.lanes.items():
            ends[partition] = max(ends.get(partition, 0), lane.highwater)
            lane.highwater = max(lane.highwater, ends[partition])
        return all(stored.get(p, -1) >= end for p, end in ends.items() if end > 0)

    def _with_retry(self, step: Callable[[], object]) -> None:
        """Run ``step`` (which may have changed memory before Redis failed), recovering from outages.

        A step that fails part-way leaves memory ahead of Redis, so it is never
        simply run again: once Redis answers, every owned partition is reloaded
        from Redis (whose stored offsets say whether the commit landed) and fetched
        again from there.
        """
        delay = self.options.retry_initial_s
        while True:
            try:
                step()
                return
            except redis.exceptions.AuthenticationError as exc:
                raise authentication_failed(self.settings.redis, exc) from exc  # retrying cannot fix it
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("Redis unavailable (%s); reloading state from Redis in %.1f s", redact(str(exc)), delay)
            if self.stopping:
                raise SystemExit(1)
            time.sleep(delay)
            delay = min(delay * 2, self.options.retry_max_s)
            step = self._reload

    def _reload(self) -> None:
        """Forget everything in memory and take the assigned partitions again from Redis, as a restart would."""
        parts = self.parts
        assert parts is not None
        partitions = {tp.partition for tp in parts.consumer.assignment()}
        self.inflight.forget()
        self.landed, self.unpublished = [], []
        for partition in list(self.owned):
            parts.outbox.forget(partition)
        parts.observer.revoked(set(self.owned))
        self.owned, self.expected = {}, {}
        self.aligner = self._aligner()
        self.processor = self._new_processor()
        if partitions:
            self._assign(partitions)


def _landing(commits: list[PartitionCommit]) -> Landing:
    """What ``commits`` add to the dedup sets and members, for the next step's read."""
    landing = Landing()
    for commit in commits:
        for remembered in commit.seen.values():
            landing.seen.update(member for _, member in remembered)
        landing.members.update(commit.members)  # each customer's fields are in one partition's commit
    return landing


def _has_content(commit: PartitionCommit) -> bool:
    return bool(
        commit.records
        or commit.members
        or commit.moves
        or commit.products
        or commit.seen
        or commit.guest_lines
        or commit.stats
        or commit.day_stats
        or commit.seen_drop
        or commit.guest_drop
        or commit.changes
        or commit.observations
        or commit.dead_letters
        or commit.index_add
    )


def _summed(commits: dict[int, PartitionCommit]) -> dict[str, int]:
    total: dict[str, int] = {}
    for commit in commits.values():
        for name, n in commit.counters.items():
            total[name] = total.get(name, 0) + n
    return total
