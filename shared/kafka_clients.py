"""Kafka client factories: one place that turns :class:`KafkaSettings` into clients.

Why: every client needs the same TLS/SASL options; building them here keeps a
secured cluster a matter of environment variables, not code changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from shared.exceptions import ServiceUnavailableError
from shared.settings import KafkaSettings


def connection_options(settings: KafkaSettings) -> dict[str, Any]:
    """The options every kafka-python client takes: servers, TLS and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in settings.bootstrap_servers.split(",")],
        "security_protocol": settings.security_protocol,
        "client_id": settings.client_id,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, name)
        if value is not None:
            options[name] = str(value)
    if settings.sasl_mechanism:
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return options


def _unavailable(settings: KafkaSettings, exc: Exception) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"no Kafka broker answers at {settings.bootstrap_servers} ({exc}); "
        "start it (docker compose up -d kafka) or point SEG_KAFKA__BOOTSTRAP_SERVERS at a running broker"
    )


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A durable producer: ``acks=all``, retries, batching tuned for throughput."""
    options = connection_options(settings) | {
        "acks": "all",
        "retries": 10,
        "linger_ms": 20,
        "batch_size": 512 * 1024,
        "max_in_flight_requests_per_connection": 1,
    }
    try:
        return KafkaProducer(**(options | overrides))
    except KafkaTimeoutError as exc:
        raise _unavailable(settings, exc) from exc


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
    except KafkaTimeoutError as exc:
        raise _unavailable(settings, exc) from exc


def make_admin(settings: KafkaSettings) -> KafkaAdminClient:
    """An admin client, for creating topics."""
    try:
        return KafkaAdminClient(**connection_options(settings))
    except KafkaTimeoutError as exc:
        raise _unavailable(settings, exc) from exc


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
    finally:
        admin.close()


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
