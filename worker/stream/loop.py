"""The consume loop: poll a batch, read what it needs in one pipeline, apply, commit once.

Order per batch, and why:

1. take up to ``batch_max_records`` records from the fetcher process
   (:mod:`worker.stream.fetcher`: Kafka's decoding runs on another core);
2. one Redis pipeline: model statistics, live model version, and the dedup
   check of every event id in the batch;
3. apply lines and score customers in memory (:mod:`worker.stream.processor`);
4. flush dead letters (so none is lost once the offsets move);
5. one Lua script writes state, model statistics, product popularity per segment,
   the outbox (segment changes and the batch's drift observations) and the new
   offsets atomically (:mod:`worker.stream.commit`, :mod:`worker.stream.outbox`);
6. publish the outbox to Kafka, then commit offsets to Kafka for lag tooling.

Steps 5 and 6 run in the background while the next batch goes through 1 to 4
(:mod:`worker.stream.inflight`); that batch's step 5 waits for them.

A crash between 5 and 6 republishes the outbox on restart: consumers drop the
repeats by (customer, sequence). Nothing is ever applied twice, because the
offsets that say where to resume are written in the same step as the state.

A new live model version (a refresh) is taken up before the next batch, or
within ``model_check_s`` when idle: every owned customer is re-scored and the
switch is committed as a step of its own (:meth:`Processor.switch_model`).
"""

from __future__ import annotations

import bisect
import gc
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType

import redis
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from threadpoolctl import threadpool_limits

from shared.contracts.drift_observation import DriftObservations
from shared.contracts.invoice import InvoiceLine
from shared.exceptions import FencedError, FetcherExitedError, ModelError, RecordError
from shared.kafka_clients import ensure_topics, make_consumer, make_producer
from shared.partitioner import partition_of
from shared.redis_client import make_redis
from shared.settings import Settings
from shared.state.customer_record import load_customers
from shared.state.keys import Keys
from shared.state.model_stats import VERSION_FIELD
from shared.state.model_store import require_current
from worker.observability.observer import Observer
from worker.stream.commit import BatchCommit, Committer
from worker.stream.dead_letter import dead_letter_record, send_dead_letter
from worker.stream.decode import decode_line
from worker.stream.dedup import SeenCheck, dedup_key, expired_keys
from worker.stream.fetcher import FetchedBatch, Fetcher
from worker.stream.inflight import InflightCommit
from worker.stream.model import AS_OF_FIELD, LocalModel
from worker.stream.outbox import Outbox
from worker.stream.processor import Change, Processor
from worker.stream.settings import WorkerSettings

log = logging.getLogger("worker")


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker.on_revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.worker.on_assigned({tp.partition for tp in assigned})


class Worker:
    """One member of the worker group; owns the customers of its assigned partitions."""

    def __init__(self, settings: Settings, worker_settings: WorkerSettings) -> None:
        self.settings = settings
        self.options = worker_settings
        self.topic = settings.topics.invoices
        self.keys = Keys(settings.redis.key_prefix)
        self.redis = make_redis(settings.redis)
        self.processor, self.watermark = self._load_processor()
        self.committer = Committer(self.redis, self.keys, self.topic)
        self.seen_check = SeenCheck(self.redis)
        ensure_topics(
            settings.kafka,
            [self.topic, settings.topics.segment_changes, settings.topics.dead_letter],
            settings.topics.partitions,
            settings.topics.replication_factor,
        )
        ensure_topics(settings.kafka, [settings.topics.drift_observations], 1, settings.topics.replication_factor)
        self.producer: KafkaProducer = make_producer(settings.kafka)
        self.outbox = Outbox(self.redis, self.committer, self.producer, settings.topics)
        # The group member: it owns partitions, heartbeats and commits offsets, but its
        # partitions stay paused; the fetcher process consumes them.
        self.consumer: KafkaConsumer = make_consumer(settings.kafka, worker_settings.group_id)
        self.fetcher = self._start_fetcher()
        self.partition_count = 0
        self.stored_offsets: dict[int, int] = {}  # as they are once the commit in flight lands
        self.inflight = InflightCommit()
        self.model_checked_at = time.monotonic()
        self.batches = 0
        self.records = 0
        self.first_batch_at: float | None = None
        self.finished_at: float | None = None
        self.stopping = False
        self.caught_up = False
        self.fetcher_delay = worker_settings.retry_initial_s
        self.observer = Observer(worker_settings, lambda: self.processor)

    # -- partition ownership -------------------------------------------------------------
    def on_assigned(self, partitions: set[int]) -> None:
        self.inflight.wait()
        self.partition_count = len(self.consumer.partitions_for_topic(self.topic) or ())
        self.consumer.pause(*[TopicPartition(self.topic, partition) for partition in partitions])
        stored = self.redis.hgetall(self.keys.offsets(self.topic))
        for partition in partitions:
            self.stored_offsets[partition] = int(stored[str(partition)]) if str(partition) in stored else -1
        self.processor.model.partition_count = self.partition_count
        customers = load_customers(self.redis, self.keys, partitions, self.partition_count)
        pipe = self.redis.pipeline(transaction=False)
        for partition in sorted(partitions):
            pipe.hmget(self.keys.partition_stats(partition), [AS_OF_FIELD, VERSION_FIELD])
        markers, stale = {}, set()
        for partition, (marker, version) in zip(sorted(partitions), pipe.execute(), strict=True):
            if marker:
                markers[partition] = datetime.fromisoformat(marker)
            if version is not None and int(version) != self.processor.model.version:
                stale.add(partition)
        self.processor.adopt(customers, {cid: partition_of(cid, self.partition_count) for cid in customers}, markers)
        for partition in partitions:
            self.outbox.drain(partition)
        if stale:
            log.info("partitions %s were scored under an older model: re-scoring them", sorted(stale))
            self._switch_model(stale)
        else:
            batch = BatchCommit(expect={})
            self.processor.stats_for(batch, partitions, self.keys.partition_stats)
            with self.redis.pipeline(transaction=True) as pipe:
                for key, fields in batch.stats.items():
                    pipe.delete(key)
                    pipe.hset(key, mapping=fields)
                pipe.execute()
        self.fetcher.assign(dict(self.stored_offsets))
        self.observer.assigned(partitions)
        log.info("assigned partitions %s: %d customers loaded", sorted(partitions), len(customers))

    def on_revoked(self, partitions: set[int]) -> None:
        self.inflight.wait()
        self.processor.release(partitions)
        self.observer.revoked(partitions)
        for partition in partitions:
            self.stored_offsets.pop(partition, None)
            self.outbox.forget(partition)
        self.fetcher.assign(dict(self.stored_offsets))
        log.info("revoked partitions %s", sorted(partitions))

    # -- the loop -------------------------------------------------------------------------
    def stop(self, signum: int = 0, frame: FrameType | None = None) -> None:
        """Finish the current batch, commit, leave the group."""
        self.stopping = True

    def run(self, until_caught_up: bool = False) -> None:
        """Consume until stopped; with ``until_caught_up`` (tests, benchmarks, one-off catch-up
        runs), stop once every partition of the topic has been applied up to its end offset."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        # The matrices are small (customers x features); BLAS worker threads cost more to
        # hand off to than the products take, and spin on the cores the broker and Redis need.
        blas = threadpool_limits(limits=1, user_api="blas")
        try:
            while not self.stopping:
                # Group duties only (its partitions are paused): joins, rebalances, commits.
                self.consumer.poll(timeout_ms=0 if self.stored_offsets else self.options.poll_timeout_ms)
                polled = self._fetch() if self.stored_offsets else {}
                self.observer.polled(self.fetcher.highwater, self.stored_offsets)
                if polled:
                    if self.first_batch_at is None:
                        self.first_batch_at = time.monotonic()
                    # A batch allocates hundreds of thousands of short-lived objects that
                    # reference counting frees; the cyclic collector would walk them over
                    # and over (a quarter of the batch's time), so it waits for the batch
                    # to end. What survives is the customers' long-lived state: frozen, so
                    # later collections do not re-walk it either.
                    gc.disable()
                    try:
                        self._with_retry(lambda polled=polled: self.process(polled))
                    finally:
                        gc.enable()
                    gc.freeze()
                else:
                    self._with_retry(self._settle)
                    if time.monotonic() - self.model_checked_at > self.options.model_check_s:
                        self._with_retry(self._check_model)
                if until_caught_up:
                    self._with_retry(self._check_caught_up)
                    if self.caught_up:
                        break
            self.finished_at = time.monotonic()
        finally:
            blas.restore_original_limits()
            try:
                self._settle()
            except redis.exceptions.RedisError as exc:
                log.warning("the last batch was not committed (%s); a restart resumes from the offsets in Redis", exc)
            self.inflight.close()
            self.consumer.close()  # its last revocation still orders the fetcher
            self.fetcher.close()
            self.producer.flush()
            self.producer.close()
            self.observer.close()
            log.info("worker stopped after %d batches", self.batches)

    def _start_fetcher(self) -> Fetcher:
        return Fetcher(self.settings, self.topic, self.options.batch_max_records, self.options.fetch_partition_bytes)

    def _fetch(self) -> dict[int, FetchedBatch]:
        """The next batch from the fetcher; a fetcher that died is replaced, with backoff.

        The new one starts from the offsets applied in memory (the commit in flight
        included): what the old one had fetched beyond them was never applied.
        """
        try:
            polled = self.fetcher.poll(self.options.poll_timeout_ms / 1000)
        except FetcherExitedError as exc:
            log.error("%s; starting a new one in %.1f s from the applied offsets", exc, self.fetcher_delay)
            self.fetcher.close()
            time.sleep(self.fetcher_delay)
            self.fetcher_delay = min(self.fetcher_delay * 2, self.options.retry_max_s)
            self.fetcher = self._start_fetcher()
            self.fetcher.assign(dict(self.stored_offsets))
            return {}
        if polled:
            self.fetcher_delay = self.options.retry_initial_s
        return polled

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
        """Set :attr:`caught_up` once every partition is applied to its end and the last commit has landed."""
        # Offsets in flight count in the first look; they must land before the run may end.
        self.caught_up = self._caught_up() and self._settle() and self._caught_up()

    def _caught_up(self) -> bool:
        """Every partition of the topic applied up to its end offset, by this worker or another.

        Not only the assigned ones: when a group member dies, its partitions are
        reassigned only after the session timeout, and a catch-up run must not
        end before they are applied too. Owned partitions count at the offsets of
        the commit in flight, if any.
        """
        if not self.consumer.assignment():
            return False
        partitions = [TopicPartition(self.topic, p) for p in self.consumer.partitions_for_topic(self.topic) or ()]
        stored = {int(p): int(o) for p, o in self.redis.hgetall(self.keys.offsets(self.topic)).items()}
        stored |= self.stored_offsets
        # A broker's ListOffsets answer can trail the high watermark its fetches report
        # (Tansu answers with the start of the last record batch): owned partitions
        # take the larger of the two.
        ends = {tp.partition: end for tp, end in self.consumer.end_offsets(partitions).items()}
        for partition, mark in self.fetcher.highwater.items():
            ends[partition] = max(ends.get(partition, 0), mark)
        return all(stored.get(partition, -1) >= end for partition, end in ends.items() if end > 0)

    def _with_retry(self, step: Callable[[], object]) -> None:
        """Run ``step`` (which may have changed in-memory state before Redis failed), recovering on outages.

        A step that fails part-way leaves memory ahead of Redis, so it is never
        simply run again: once Redis answers, every owned partition is reloaded
        from Redis (where the stored offsets say whether the batch's commit landed)
        and the consumer is rewound to them; the records are then polled again.
        """
        delay = self.options.retry_initial_s
        while True:
            try:
                step()
                return
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                log.warning("Redis unavailable (%s); reloading state from Redis in %.1f s", exc, delay)
            if self.stopping:
                raise SystemExit(1)
            time.sleep(delay)
            delay = min(delay * 2, self.options.retry_max_s)
            step = self._reload

    def process(self, polled: dict[int, FetchedBatch]) -> None:
        """Apply one polled batch exactly once."""
        started = time.perf_counter()
        batch = BatchCommit(expect={})
        decoded: list[tuple[int, InvoiceLine]] = []
        by_day: dict[str, list[str]] = {}  # event ids per dedup set
        day_ids: list[str] = []
        day_start = day_end = datetime.min
        latest = None
        dead = 0
        cutoff = self.processor.cutoff
        for partition, fetched in sorted(polled.items()):
            if partition not in self.stored_offsets or not fetched.offsets:
                continue
            first = bisect.bisect_left(fetched.offsets, self.stored_offsets[partition])
            if first:
                batch.count("redelivered_skipped", first)
            if first == len(fetched.offsets):
                continue
            batch.offsets[partition] = fetched.offsets[-1] + 1
            values = fetched.values
            for index in range(first, len(values)):
                try:
                    line = decode_line(values[index])
                except RecordError as error:
                    record = fetched.record(index)
                    send_dead_letter(
                        self.producer, self.settings.topics.dead_letter, dead_letter_record(record, error), record.key
                    )
                    self.observer.dead_letter(record, error)
                    dead += 1
                    continue
                moment = line.invoice_date
                if cutoff is not None and moment < cutoff:
                    batch.count("before_cutoff")
                    continue
                if not day_start <= moment < day_end:
                    day_start = datetime(moment.year, moment.month, moment.day)
                    day_end = day_start + timedelta(days=1)
                    day_ids = by_day.setdefault(dedup_key(self.keys.prefix, moment), [])
                day_ids.append(line.event_id)
                # Duplicates count here too: a repeat has its original's event time.
                if latest is None or moment > latest:
                    latest = moment
                decoded.append((partition, line))
        if not batch.offsets:
            return
        batch.expect = dict(self.stored_offsets)
        batch.count("dead_lettered", dead)
        remote = [p for p in range(self.partition_count) if p not in self.stored_offsets]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.model_stats)
        pipe.get(self.keys.model_current)
        for partition in remote:
            pipe.hgetall(self.keys.partition_stats(partition))
        if by_day:
            self.seen_check.queue(pipe, by_day)
        landing = self.inflight.event_ids  # not in Redis yet when it answers
        replies = pipe.execute()
        stats, current_version = replies[0], replies[1]
        remote_stats = dict(zip(remote, replies[2 : 2 + len(remote)], strict=True))
        seen = SeenCheck.decode(replies[-1]) if by_day else set()
        new_model = current_version is not None and int(current_version) != self.processor.model.version
        if new_model and not self._switch_model(set()):
            return
        self.processor.model.load_global(stats)
        self.processor.model.load_remote(remote_stats)
        batch.dedup = by_day  # repeats included: adding an id twice to a set is harmless
        unique = {event_id for ids in by_day.values() for event_id in ids}
        if len(unique) == len(decoded) and seen.isdisjoint(unique) and landing.isdisjoint(unique):
            fresh_lines = decoded
        else:
            fresh_lines = self._drop_duplicates(batch, decoded, seen | landing)
        previous_watermark = self.watermark
        if latest is not None:
            self.watermark = latest if self.watermark is None else max(self.watermark, latest)
        if self.watermark is not None:
            batch.watermark = self.watermark.isoformat()
            if previous_watermark is not None:
                batch.dedup_drop = expired_keys(
                    self.keys.prefix, previous_watermark, self.watermark, self.options.dedup_retention_days
                )
        changes = self.processor.apply(batch, fresh_lines, self.watermark) if self.watermark else []
        observations = self._observations(batch.offsets)
        if dead:
            self.producer.flush()
        if not self._commit(batch, changes, observations):
            return
        self.batches += 1
        consumed = sum(len(fetched.offsets) for fetched in polled.values())
        self.records += consumed
        elapsed = time.perf_counter() - started
        self.observer.metrics.batch_done(consumed, elapsed, batch.counters, len(changes), self.processor.sweep_seconds)

    def _drop_duplicates(
        self, batch: BatchCommit, decoded: list[tuple[int, InvoiceLine]], seen: set[str]
    ) -> list[tuple[int, InvoiceLine]]:
        """The lines whose event id was neither seen before nor earlier in the batch."""
        fresh = []
        for partition, line in decoded:
            if line.event_id in seen:
                batch.count("duplicates_dropped")
                continue
            seen.add(line.event_id)
            fresh.append((partition, line))
        return fresh

    def _observations(self, offsets: dict[int, int]) -> dict[int, str]:
        """This batch's drift observations, one message per source partition it advanced."""
        taken = self.processor.observations.take(self.processor.partition_times)
        out = {}
        for partition, offset in offsets.items():
            moment = self.processor.partition_times.get(partition)
            if moment is None:
                continue
            invoices, assignments = taken.get(partition, ([], []))
            out[partition] = DriftObservations(
                source_partition=partition,
                end_offset=offset,
                partition_time=moment,
                model_version=self.processor.model.version,
                invoices=invoices,
                assignments=assignments,
            ).model_dump_json()
        return out

    def _commit(self, batch: BatchCommit, changes: list[Change], observations: dict[int, str]) -> bool:
        """Send the batch, with every owned partition's statistics and its outbox, to land in the background.

        The previous batch lands first. False when that one was fenced (another
        worker owns a partition now): state has been reloaded and this batch is dropped.
        """
        self.processor.stats_for(batch, self.stored_offsets, self.keys.partition_stats)
        by_partition: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for change in changes:
            by_partition[change.partition].append((change.customer_id, change.payload))
        partitions = sorted(self.stored_offsets)
        if not self._settle():
            return False

        def land() -> None:
            staged = self.outbox.stage(batch, partitions, by_partition, observations)
            self.committer.commit(batch)
            self.outbox.send(batch, staged)

        event_ids = frozenset(event_id for ids in batch.dedup.values() for event_id in ids)
        self.inflight.submit(land, dict(batch.offsets), event_ids)
        self.stored_offsets.update(batch.offsets)
        return True

    def _settle(self) -> bool:
        """Wait for the commit in flight, then commit its offsets to Kafka (for lag tooling).

        False when it was fenced (another worker owns a partition now): state is reloaded.
        A Redis failure is raised, for :meth:`_with_retry` to reload once Redis is back.
        """
        try:
            landed = self.inflight.settle()
        except FencedError as exc:
            log.warning("%s; reloading ownership", exc, extra={"partition": exc.partition, "offset": exc.offset})
            self._reload()
            return False
        if landed:
            self.consumer.commit_async(
                {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in landed.items()}
            )
        return True

    def _check_model(self) -> None:
        """While idle: switch to a new live model version if one was installed (e.g. a refresh)."""
        self.model_checked_at = time.monotonic()
        current = self.redis.get(self.keys.model_current)
        if self.stored_offsets and current is not None and int(current) != self.processor.model.version:
            self._switch_model(set())

    def _switch_model(self, partitions: set[int]) -> bool:
        """Re-score under the live model (every owned customer on a version change, else ``partitions``), commit.

        False when the commit was fenced (state has been reloaded).
        """
        snapshot = require_current(self.redis, self.keys)
        previous = self.processor.model
        model = previous if snapshot.version == previous.version else LocalModel(snapshot)
        as_of = self.watermark or self.processor.cutoff
        if as_of is None:
            raise ModelError("no event time to score at: neither a stream watermark nor a bootstrap cutoff in Redis")
        changes = self.processor.switch_model(model, previous.names, partitions, as_of)
        batch = BatchCommit(expect=dict(self.stored_offsets))
        self.processor.dirty_records(batch)
        batch.count("model_switch_rescored", len(batch.customers))
        if not (self._commit(batch, changes, {}) and self._settle()):
            return False
        log.info(
            "now on model v%d: %d customers re-scored, %d segment changes (model_refresh)",
            snapshot.version,
            len(batch.customers),
            len(changes),
        )
        return True

    def _load_processor(self) -> tuple[Processor, datetime | None]:
        """A processor owning nothing yet, and the stream watermark, from what Redis holds now."""
        snapshot = require_current(self.redis, self.keys)
        cutoff = self.redis.get(self.keys.cutoff)
        processor = Processor(
            model=LocalModel(snapshot),
            publish_margin=self.options.publish_margin,
            confirm_sweeps=self.options.confirm_sweeps,
            inactivity_dwell=timedelta(days=self.options.inactivity_dwell_days),
            lloyd_passes=self.options.lloyd_passes,
            cutoff=datetime.fromisoformat(cutoff) if cutoff else None,
        )
        stored = self.redis.get(self.keys.watermark)
        watermark = datetime.fromisoformat(stored) if stored else None
        if watermark is not None:
            processor.last_sweep_day = datetime(watermark.year, watermark.month, watermark.day)
        return processor, watermark

    def _reload(self) -> None:
        """Forget everything in memory and take the assigned partitions again from Redis, as a restart would."""
        partitions = {tp.partition for tp in self.consumer.assignment()}
        self.inflight.forget()
        self.processor, self.watermark = self._load_processor()
        for partition in list(self.stored_offsets):
            self.stored_offsets.pop(partition)
            self.outbox.forget(partition)
        self.observer.revoked(partitions)
        if partitions:
            self.on_assigned(partitions)
