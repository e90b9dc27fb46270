"""The consume loop: poll a batch, read what it needs in one pipeline, apply, commit once.

Order per batch, and why:

1. poll up to ``batch_max_records`` records;
2. one Redis pipeline: model statistics, live model version, and the dedup
   check of every event id in the batch;
3. apply lines and score customers in memory (:mod:`worker.stream.processor`);
4. flush dead letters (so none is lost once the offsets move);
5. one Lua script writes state, model statistics, product popularity per segment,
   the outbox (segment changes and the batch's drift observations) and the new
   offsets atomically (:mod:`worker.stream.commit`, :mod:`worker.stream.outbox`);
6. publish the outbox to Kafka, then commit offsets to Kafka for lag tooling.

A crash between 5 and 6 republishes the outbox on restart: consumers drop the
repeats by (customer, sequence). Nothing is ever applied twice, because the
offsets that say where to resume are written in the same step as the state.

A new live model version (a refresh) is taken up before the next batch, or
within ``model_check_s`` when idle: every owned customer is re-scored and the
switch is committed as a step of its own (:meth:`Processor.switch_model`).
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import date, datetime
from types import FrameType

import redis
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from shared.contracts.drift_observation import DriftObservations
from shared.contracts.invoice import InvoiceLine
from shared.exceptions import ModelError, RecordError
from shared.kafka_clients import ensure_topics, make_consumer, make_producer
from shared.model_stats import VERSION_FIELD
from shared.model_store import require_current
from shared.redis_client import make_redis
from shared.settings import Settings
from shared.state_keys import Keys
from worker.observability.observer import Observer
from worker.stream.commit import BatchCommit, Committer, FencedError
from worker.stream.customers import load_customers, partition_of
from worker.stream.dead_letter import dead_letter_record, send_dead_letter
from worker.stream.decode import decode_line
from worker.stream.dedup import SeenCheck, dedup_key, expired_keys
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
        self.consumer: KafkaConsumer = make_consumer(
            settings.kafka,
            worker_settings.group_id,
            max_poll_records=worker_settings.batch_max_records,
            max_partition_fetch_bytes=worker_settings.fetch_partition_bytes,
        )
        self.partition_count = 0
        self.stored_offsets: dict[int, int] = {}
        self.model_checked_at = time.monotonic()
        self.batches = 0
        self.records = 0
        self.first_batch_at: float | None = None
        self.finished_at: float | None = None
        self.stopping = False
        self.observer = Observer(worker_settings, lambda: self.processor)

    # -- partition ownership -------------------------------------------------------------
    def on_assigned(self, partitions: set[int]) -> None:
        self.partition_count = len(self.consumer.partitions_for_topic(self.topic) or ())
        stored = self.redis.hgetall(self.keys.offsets(self.topic))
        for partition in partitions:
            offset = int(stored[str(partition)]) if str(partition) in stored else -1
            self.stored_offsets[partition] = offset
            tp = TopicPartition(self.topic, partition)
            if offset >= 0:
                self.consumer.seek(tp, offset)
            else:
                self.consumer.seek_to_beginning(tp)
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
        self.observer.assigned(partitions)
        log.info("assigned partitions %s: %d customers loaded", sorted(partitions), len(customers))

    def on_revoked(self, partitions: set[int]) -> None:
        self.processor.release(partitions)
        self.observer.revoked(partitions)
        for partition in partitions:
            self.stored_offsets.pop(partition, None)
            self.outbox.forget(partition)
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
        try:
            while not self.stopping:
                polled = self.consumer.poll(timeout_ms=self.options.poll_timeout_ms)
                self.observer.polled(self.consumer, self.topic, self.stored_offsets)
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
                elif until_caught_up and self._caught_up():
                    break
                elif time.monotonic() - self.model_checked_at > self.options.model_check_s:
                    self._with_retry(self._check_model)
            self.finished_at = time.monotonic()
        finally:
            self.consumer.close()
            self.producer.flush()
            self.producer.close()
            self.observer.close()
            log.info("worker stopped after %d batches", self.batches)

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

    def _caught_up(self) -> bool:
        """Every partition of the topic applied up to its end offset, by this worker or another.

        Not only the assigned ones: when a group member dies, its partitions are
        reassigned only after the session timeout, and a catch-up run must not
        end before they are applied too.
        """
        if not self.consumer.assignment():
            return False
        partitions = [TopicPartition(self.topic, p) for p in self.consumer.partitions_for_topic(self.topic) or ()]
        stored = self.redis.hgetall(self.keys.offsets(self.topic))
        ends = self.consumer.end_offsets(partitions)
        return all(int(stored.get(str(tp.partition), -1)) >= end for tp, end in ends.items() if end > 0)

    def _with_retry(self, step: Callable[[], None]) -> None:
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

    def process(self, polled: dict[TopicPartition, list]) -> None:
        """Apply one polled batch exactly once."""
        started = time.perf_counter()
        batch = BatchCommit(expect={})
        decoded: list[tuple[int, InvoiceLine, str]] = []
        dead = 0
        cutoff = self.processor.cutoff
        day_keys: dict[date, str] = {}
        for tp, records in sorted(polled.items(), key=lambda item: item[0].partition):
            partition = tp.partition
            if partition not in self.stored_offsets:
                continue
            start = self.stored_offsets[partition]
            if records[0].offset < start:
                fresh = [r for r in records if r.offset >= start]
                batch.count("redelivered_skipped", len(records) - len(fresh))
            else:
                fresh = records
            if not fresh:
                continue
            batch.offsets[partition] = fresh[-1].offset + 1
            for record in fresh:
                try:
                    line = decode_line(record.value)
                except RecordError as error:
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
                day = moment.date()
                key = day_keys.get(day)
                if key is None:
                    key = day_keys[day] = dedup_key(self.keys.prefix, moment)
                decoded.append((partition, line, key))
        if not batch.offsets:
            return
        batch.expect = dict(self.stored_offsets)
        batch.count("dead_lettered", dead)
        by_day: dict[str, list[str]] = defaultdict(list)
        for _, line, day in decoded:
            by_day[day].append(line.event_id)
        remote = [p for p in range(self.partition_count) if p not in self.stored_offsets]
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.model_stats)
        pipe.get(self.keys.model_current)
        for partition in remote:
            pipe.hgetall(self.keys.partition_stats(partition))
        if by_day:
            self.seen_check.queue(pipe, by_day)
        replies = pipe.execute()
        stats, current_version = replies[0], replies[1]
        remote_stats = dict(zip(remote, replies[2 : 2 + len(remote)], strict=True))
        seen = SeenCheck.decode(replies[-1]) if by_day else set()
        new_model = current_version is not None and int(current_version) != self.processor.model.version
        if new_model and not self._switch_model(set()):
            return
        self.processor.model.load_global(stats)
        self.processor.model.load_remote(remote_stats)
        fresh_lines = []
        for partition, line, day in decoded:
            if line.event_id in seen:
                batch.count("duplicates_dropped")
                continue
            seen.add(line.event_id)
            batch.dedup.setdefault(day, []).append(line.event_id)
            fresh_lines.append((partition, line))
        previous_watermark = self.watermark
        if fresh_lines:
            latest = max(line.invoice_date for _, line in fresh_lines)
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
        self.consumer.commit_async(
            {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in batch.offsets.items()}
        )
        self.batches += 1
        consumed = sum(len(records) for records in polled.values())
        self.records += consumed
        elapsed = time.perf_counter() - started
        self.observer.metrics.batch_done(consumed, elapsed, batch.counters, len(changes), self.processor.sweep_seconds)

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
        """Write the batch with every owned partition's statistics and its outbox; then publish.

        False when fenced (another worker owns a partition now): state is reloaded, nothing sent.
        """
        self.processor.stats_for(batch, self.stored_offsets, self.keys.partition_stats)
        by_partition: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for change in changes:
            by_partition[change.partition].append((change.customer_id, change.payload))
        staged = self.outbox.stage(batch, sorted(self.stored_offsets), by_partition, observations)
        try:
            self.committer.commit(batch)
        except FencedError as exc:
            log.warning("%s; reloading ownership", exc, extra={"partition": exc.partition, "offset": exc.offset})
            self._reload()
            return False
        for partition, offset in batch.offsets.items():
            self.stored_offsets[partition] = offset
        self.outbox.send(batch, staged)
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
        if not self._commit(batch, changes, {}):
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
        self.processor, self.watermark = self._load_processor()
        for partition in list(self.stored_offsets):
            self.stored_offsets.pop(partition)
            self.outbox.forget(partition)
        self.observer.revoked(partitions)
        if partitions:
            self.on_assigned(partitions)
