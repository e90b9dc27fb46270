"""Kafka client factories: one place that turns :class:`KafkaSettings` into clients.

Why: every client needs the same TLS/SASL options; building them here keeps a
secured cluster a matter of environment variables, not code changes. Errors are
translated here too (:func:`kafka_error`): a refused SASL login names the
settings to fix, and no message shows a secret. :func:`deliver` and
:func:`close_producer` bound what kafka-python leaves unbounded (waiting for
acks, closing with records pending).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    AuthorizationError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
    UnsupportedSaslMechanismError,
)
from kafka.producer.future import FutureRecordMetadata, RecordMetadata

from shared.exceptions import (
    AuthenticationFailedError,
    ConfigError,
    DeliveryError,
    SegmentationError,
    ServiceUnavailableError,
)
from shared.kafka_options import connection_options
from shared.redaction import redact
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)


def kafka_error(settings: KafkaSettings, exc: KafkaError) -> SegmentationError:
    """Our error for a kafka-python one: what happened, at which servers, and the setting to fix.

    A refused login or a missing permission is a :class:`ConfigError` (retrying
    cannot help); everything else is a :class:`ServiceUnavailableError`.
    """
    servers = redact(settings.bootstrap_servers)
    detail = redact(str(exc))
    if isinstance(exc, SaslAuthenticationFailedError):
        return AuthenticationFailedError(
            f"Kafka at {servers}: SASL authentication failed for user {settings.sasl_username!r} "
            f"({settings.sasl_mechanism}): {detail}; fix SEG_KAFKA__SASL_USERNAME / SEG_KAFKA__SASL_PASSWORD"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return AuthenticationFailedError(
            f"Kafka at {servers} does not offer SASL {settings.sasl_mechanism}: {detail}; "
            "set SEG_KAFKA__SASL_MECHANISM to one it offers"
        )
    if isinstance(exc, AuthorizationError):
        return ConfigError(
            f"Kafka at {servers}: user {settings.sasl_username!r} is not allowed to do this ({detail}); "
            "grant it the ACLs or use another SEG_KAFKA__SASL_USERNAME"
        )
    if isinstance(exc, KafkaTimeoutError):
        hint = (
            "; or it did not complete the SASL login: check SEG_KAFKA__SASL_MECHANISM, SEG_KAFKA__SASL_USERNAME "
            "and SEG_KAFKA__SASL_PASSWORD"
            if settings.sasl_mechanism
            else ""
        )
        return ServiceUnavailableError(
            f"no Kafka broker answers at {servers} ({detail}); start it (docker compose up -d kafka) "
            f"or point SEG_KAFKA__BOOTSTRAP_SERVERS at a running broker{hint}"
        )
    return ServiceUnavailableError(f"Kafka at {servers} failed: {detail}")


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A durable producer: ``acks=all``, retries within ``delivery_timeout_ms``, batching tuned for throughput.

    Idempotence is off on purpose: kafka-python's idempotent producer (its
    default) stops delivering for good once a broker stall has expired some of
    its batches (measured against Tansu: no send acknowledged or failed in the
    minute after the broker came back). Repeats after a retry are dropped by
    consumers by id instead. ``max_block_ms`` is the request timeout, so a
    ``send()`` waiting for topic metadata returns within that bound.
    """
    options = connection_options(settings) | {
        "acks": "all",
        "retries": 10,
        "enable_idempotence": False,
        "delivery_timeout_ms": settings.delivery_timeout_ms,
        "max_block_ms": settings.request_timeout_ms,
        "linger_ms": 20,
        "batch_size": 512 * 1024,
        "max_in_flight_requests_per_connection": 1,
    }
    try:
        return KafkaProducer(**(options | overrides))
    except KafkaError as exc:
        raise kafka_error(settings, exc) from exc


def make_consumer(settings: KafkaSettings, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer with manual commits and the group timeouts from settings."""
    options = connection_options(settings) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": settings.max_poll_interval_ms,
    }
    try:
        return KafkaConsumer(**(options | overrides))
    except KafkaError as exc:
        raise kafka_error(settings, exc) from exc


def make_admin(settings: KafkaSettings) -> KafkaAdminClient:
    """An admin client, for creating topics."""
    try:
        return KafkaAdminClient(**connection_options(settings))
    except KafkaError as exc:
        raise kafka_error(settings, exc) from exc


def ensure_topics(settings: KafkaSettings, names: list[str], partitions: int, replication_factor: int) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = make_admin(settings)
    try:
        missing = [name for name in names if name not in set(admin.list_topics())]
        created = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, partitions, replication_factor)])
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    except KafkaError as exc:
        raise kafka_error(settings, exc) from exc
    finally:
        admin.close()


def high_watermarks(settings: KafkaSettings, topics: list[str], timeout_s: float) -> dict[str, dict[int, int]]:
    """Every partition's high watermark (the offset after its last record) as a fetch response reports it.

    Why not ``end_offsets()``: Tansu answers ListOffsets with the start of the
    last record batch, which undercounts; the high watermark of a fetch is exact
    on Tansu and on Apache Kafka alike. The topics must exist; one missing from
    the broker's metadata (just created, or a metadata hiccup) is waited for,
    because "no partitions" must never read as "empty". Raises
    :class:`ServiceUnavailableError` when the broker does not answer within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    consumer = make_consumer(settings, group_id=None, fetch_max_wait_ms=_PROMPT_FETCH_MS)
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            while not (known := consumer.partitions_for_topic(topic)):
                _before(deadline, f"topic {topic} is not in the broker's metadata after {timeout_s:.0f} s")
                time.sleep(0.2)
            partitions += [TopicPartition(topic, p) for p in sorted(known)]
        consumer.assign(partitions)
        for tp, offset in consumer.end_offsets(partitions).items():
            consumer.seek(tp, offset)  # fetch from (near) the end: the response carries the high watermark
        while any(consumer.highwater(tp) is None for tp in partitions):
            _before(deadline, f"Kafka did not report the end of {', '.join(topics)} within {timeout_s:.0f} s")
            consumer.poll(timeout_ms=200, max_records=1)
        marks: dict[str, dict[int, int]] = {topic: {} for topic in topics}
        for tp in partitions:
            marks[tp.topic][tp.partition] = consumer.highwater(tp)
        return marks
    except KafkaError as exc:
        raise kafka_error(settings, exc) from exc
    finally:
        consumer.close()


_PROMPT_FETCH_MS = 10  # a fetch for the high watermark need not wait for data (the default waits 500 ms)


def _before(deadline: float, message: str) -> None:
    if time.monotonic() > deadline:
        raise ServiceUnavailableError(message)


def read_to_end(settings: KafkaSettings, topic: str, max_records: int = 50_000) -> Iterator[ConsumerRecord]:
    """Every record of ``topic`` from the beginning to the end offsets at call time.

    For tools, tests and benchmarks that read a whole topic without joining a group.
    """
    consumer = make_consumer(settings, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            for records in consumer.poll(timeout_ms=1000, max_records=max_records).values():
                yield from records
    finally:
        consumer.close()


class Outgoing(NamedTuple):
    """One record to send with :func:`deliver`."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    partition: int | None = None


def deliver(producer: KafkaProducer, records: Iterable[Outgoing], timeout_s: float) -> list[RecordMetadata]:
    """Send ``records`` and wait until the broker acknowledged every one, within ``timeout_s`` in all.

    The contract, for anything that may only forget (trim, commit past) what the
    broker has:

    * returns the metadata of every record, in input order, only when all are
      acknowledged (``acks=all`` with :func:`make_producer`);
    * raises :class:`DeliveryError` when a send is refused, an acknowledgement
      fails, or ``timeout_s`` passes first; ``acknowledged`` is how many records
      from the start were acknowledged. Records after those may still reach the
      broker later (the producer retries until ``delivery_timeout_ms``): keep
      them and send them again, and let consumers drop repeats by id;
    * never waits longer than ``timeout_s`` for acks; a ``send()`` itself can
      wait up to the producer's ``max_block_ms`` (the request timeout with
      :func:`make_producer`) for the metadata of a topic it has not seen.

    ``timeout_s`` should exceed the producer's ``delivery_timeout_ms`` when
    the caller wants each record to get the producer's own retries first.
    """
    deadline = time.monotonic() + timeout_s
    futures: list[FutureRecordMetadata] = []
    for record in records:
        try:
            futures.append(
                producer.send(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers) or None,
                    partition=record.partition,
                )
            )
        except KafkaError as exc:
            raise DeliveryError(
                f"the producer refused record {len(futures)} for {record.topic}: {redact(str(exc))}", acknowledged=0
            ) from exc
    return await_acks(futures, deadline - time.monotonic())


def await_acks(futures: Sequence[FutureRecordMetadata], timeout_s: float) -> list[RecordMetadata]:
    """Wait for every future in order, ``timeout_s`` in all; :class:`DeliveryError` as :func:`deliver` says."""
    deadline = time.monotonic() + timeout_s
    acknowledged: list[RecordMetadata] = []
    for future in futures:
        try:
            acknowledged.append(future.get(timeout=max(deadline - time.monotonic(), 0.0)))
        except KafkaError as exc:
            raise DeliveryError(
                f"the broker acknowledged {len(acknowledged)} of {len(futures)} records "
                f"within {timeout_s:.1f} s: {redact(str(exc))}",
                acknowledged=len(acknowledged),
            ) from exc
    return acknowledged


def close_producer(producer: KafkaProducer, timeout_s: float) -> bool:
    """Close within about ``timeout_s``, also when records are still unacknowledged; True if nothing was dropped.

    Why: kafka-python's ``close(timeout)`` first flushes with that timeout and
    raises when records are still pending, before it reaches its own forced
    close; its sender thread then keeps retrying those records in the
    background and may deliver them after the caller has moved on (and, with no
    explicit close, its exit handler flushes without a timeout). Here the
    pending records are failed instead (their futures raise) and the sender
    thread is stopped.
    """
    try:
        producer.close(timeout=timeout_s)
        return True
    except KafkaTimeoutError:
        log.warning("closing the Kafka producer with records not acknowledged; they are dropped")
    sender = producer._sender  # kafka-python has no public forced close
    sender.force_close()
    sender.join(timeout_s)
    try:
        producer.close(timeout=0)
    except KafkaTimeoutError:
        log.warning("the Kafka producer's sender thread did not stop within %.1f s", timeout_s)
    return False
