"""The rig gives real services: a round trip through each proves it."""

from __future__ import annotations

import redis
from kafka import TopicPartition

from shared.kafka_clients import ensure_topics, make_consumer, make_producer
from shared.redis_client import make_redis
from shared.settings import Settings


def test_broker_round_trip(settings: Settings) -> None:
    topic = settings.topics.invoices
    assert ensure_topics(settings.kafka, [topic], partitions=2, replication_factor=1) == [topic]
    assert ensure_topics(settings.kafka, [topic], partitions=2, replication_factor=1) == []
    producer = make_producer(settings.kafka)
    for i in range(10):
        producer.send(topic, key=b"k", value=str(i).encode())
    producer.flush()
    producer.close()
    consumer = make_consumer(settings.kafka, group_id=None)
    partitions = [TopicPartition(topic, p) for p in range(2)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    values: list[int] = []
    while len(values) < 10:
        for records in consumer.poll(timeout_ms=1000).values():
            values.extend(int(r.value) for r in records)
    consumer.close()
    assert values == list(range(10))


def test_redis_round_trip(settings: Settings, redis_client: redis.Redis) -> None:
    client = make_redis(settings.redis)
    client.set(settings.redis.key_prefix + "x", "1")
    assert redis_client.get(settings.redis.key_prefix + "x") == "1"
