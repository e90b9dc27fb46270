"""Which cluster and topics a replay writes to, and whether a checkpoint may resume there.

Why: a checkpoint says "the first N messages are on the topic". That is only
true on the cluster, and the incarnation of the topic, that acknowledged them.
A fresh broker, a wiped one or a re-created topic would otherwise "resume" and
send nothing, and a topic with more partitions would put a customer's later
rows on another partition than its earlier ones. So a checkpoint records the
cluster id, each topic's id and partition count, and where the acknowledged
prefix ends in every partition; :func:`resume_point` compares that with what the
broker reports now.

The end of a partition is read as the high watermark of a fetch: Tansu answers
ListOffsets with the start of the last record batch, which undercounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError

from producer.checkpoint import Saved
from shared.exceptions import CheckpointMismatchError
from shared.kafka_clients import high_watermarks, kafka_error, make_admin
from shared.settings import KafkaSettings

_NULL_TOPIC_ID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class TopicState:
    """One topic as the broker reports it: its id (None when the broker has none) and partition ends."""

    topic_id: str | None
    ends: dict[int, int]

    @property
    def partitions(self) -> int:
        return len(self.ends)

    @property
    def empty(self) -> bool:
        return not any(self.ends.values())


@dataclass(frozen=True)
class Target:
    """The cluster and topics a replay writes to, as the broker reports them now."""

    cluster_id: str | None
    topics: dict[str, TopicState] = field(default_factory=dict)

    def identity(self) -> dict[str, Any]:
        """What a checkpoint records: cluster id, each topic's id and partition count (not its ends)."""
        return {
            "cluster_id": self.cluster_id,
            "topics": {
                name: {"id": state.topic_id, "partitions": state.partitions} for name, state in self.topics.items()
            },
        }


def observe(settings: KafkaSettings, topics: list[str], timeout_s: float) -> Target:
    """Cluster id, topic ids and fetched high watermarks of ``topics`` (which must exist)."""
    admin = make_admin(settings)
    try:
        cluster_id = admin.describe_cluster().get("cluster_id")
        described = {topic["name"]: topic for topic in admin.describe_topics(topics)}
    except KafkaError as exc:
        raise kafka_error(settings, exc) from exc
    finally:
        admin.close()
    ends = high_watermarks(settings, topics, timeout_s)
    states = {}
    for name in topics:
        topic_id = described.get(name, {}).get("topic_id")
        states[name] = TopicState(None if topic_id in (None, _NULL_TOPIC_ID) else str(topic_id), ends[name])
    return Target(cluster_id, states)


def resume_point(saved: Saved, now: Target, main_topic: str, checkpoint: str) -> int:
    """Where to resume: ``saved.acked``, 0 when the topics are empty, else :class:`CheckpointMismatchError`.

    The order of the checks is the order of what to tell the user first: an
    empty target is unambiguous (nothing of ours is there, so everything is
    sent, once); another cluster; a changed partition count (which also needs a
    re-bootstrap of the worker's state); a re-created topic; a topic whose end is
    behind what was acknowledged (data lost).
    """
    if saved.acked == 0 or all(state.empty for state in now.topics.values()):
        return 0
    identity = saved.identity or {}
    was = f"checkpoint {checkpoint} records {saved.acked} messages acknowledged"
    if not identity:
        raise _mismatch(f"{was}, but not by which cluster and topic (written by an older version)", main_topic)
    if identity.get("cluster_id") != now.cluster_id:
        raise _mismatch(
            f"{was} by Kafka cluster {identity.get('cluster_id')!r}; the broker at SEG_KAFKA__BOOTSTRAP_SERVERS "
            f"is cluster {now.cluster_id!r}",
            main_topic,
        )
    recorded_topics: dict[str, dict[str, Any]] = identity.get("topics", {})
    before = recorded_topics.get(main_topic, {}).get("partitions")
    if before is not None and before != now.topics[main_topic].partitions:
        raise CheckpointMismatchError(
            f"{was} on topic {main_topic} with {before} partitions; it has "
            f"{now.topics[main_topic].partitions} now. Customers are placed by key hash modulo the partition "
            f"count, so resuming would send a customer's later rows to another partition than its earlier ones. "
            f"After a partition change, bootstrap the worker's state again (python -m worker bootstrap --force) "
            f"and replay with --from-scratch, or replay to a topic with {before} partitions (--topic)."
        )
    for name, state in now.topics.items():
        was_id = recorded_topics.get(name, {}).get("id")
        if was_id is not None and state.topic_id is not None and was_id != state.topic_id:
            raise _mismatch(f"{was} on topic {name} (id {was_id}); it was re-created since", main_topic)
    for name, ends in saved.ends.items():
        for partition, end in ends.items():
            have = now.topics[name].ends.get(partition, 0) if name in now.topics else 0
            if have < end:
                raise _mismatch(
                    f"{was}, up to offset {end} in {name} partition {partition}; the partition ends at {have} "
                    "now: the broker lost data",
                    main_topic,
                )
    return saved.acked


def _mismatch(what: str, topic: str) -> CheckpointMismatchError:
    return CheckpointMismatchError(
        f"{what}. Resuming would skip rows that are not there. Rerun with --from-scratch to replay every row to "
        f"{topic} (consumers drop rows already there by event id), or point SEG_KAFKA__BOOTSTRAP_SERVERS and "
        "--topic at the cluster and topic of the checkpoint."
    )
