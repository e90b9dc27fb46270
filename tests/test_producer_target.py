"""A checkpoint belongs to one cluster, topic incarnation and partition count; elsewhere it never silently resumes.

Replays go through the CLI, as an operator runs them: exit code 2 and a message
that names ``--from-scratch`` when resuming would skip rows that are not there,
a full replay (each row once) when the topics are empty.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from kafka.admin import NewTopic

from producer.checkpoint import Saved
from producer.target import Target, TopicState, resume_point
from rig.local_services import TansuBroker
from shared.exceptions import CheckpointMismatchError
from shared.kafka_clients import close_producer, make_admin, make_producer
from shared.partitioner import partition_of
from shared.settings import KafkaSettings, Settings
from tests.test_producer_replay import cli_env, consume_all, run_cli, seq_of, write_rows

ROWS = 40
FOREIGN_KEY = b"someone-else"


def rows_file(tmp_path: Path) -> Path:
    """Forty lines of eight customers and, every fifth line, a guest (no customer id)."""
    rows = [
        f"5{i:04d},S{i % 7},D,{1 + i % 3},2011-03-01 {8 + i // 10:02d}:{i % 60:02d}:00,1.5,"
        f"{'' if i % 5 == 0 else 17000 + i % 8},UK"
        for i in range(ROWS)
    ]
    return write_rows(tmp_path / "rows.csv", rows)


def checkpoint_of(tmp_path: Path) -> dict:
    [path] = (tmp_path / "checkpoints").glob("replay-*.json")
    return json.loads(path.read_text())


def seqs(kafka: KafkaSettings, topic: str) -> Counter[int]:
    """Sequence numbers of the replay's records on ``topic`` (a foreign record has none)."""
    return Counter(seq_of(record) for record in consume_all(kafka, topic) if record.key != FOREIGN_KEY)


def write_foreign_record(kafka: KafkaSettings, topic: str) -> None:
    """Someone else's record: the topic is not empty, and not ours."""
    producer = make_producer(kafka)
    producer.send(topic, key=FOREIGN_KEY, value=b"{}").get(timeout=10)
    close_producer(producer, 5)


def recreate(kafka: KafkaSettings, topic: str, partitions: int) -> None:
    admin = make_admin(kafka)
    try:
        admin.delete_topics([topic])
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def test_checkpoint_records_cluster_topic_ids_partitions_and_ends(settings: Settings, tmp_path: Path) -> None:
    path = rows_file(tmp_path)
    result = run_cli("replay", str(path), "--quiet", env=cli_env(settings, tmp_path))
    assert result.returncode == 0, result.stderr
    state = checkpoint_of(tmp_path)
    admin = make_admin(settings.kafka)
    try:
        cluster_id = admin.describe_cluster()["cluster_id"]
        topic_id = admin.describe_topics([settings.topics.invoices])[0]["topic_id"]
    finally:
        admin.close()
    invoices = settings.topics.invoices
    assert state["acked"] == ROWS and state["complete"] is True
    assert state["target"]["cluster_id"] == cluster_id
    assert state["target"]["topics"][invoices] == {"id": str(topic_id), "partitions": settings.topics.partitions}
    records = consume_all(settings.kafka, invoices)
    ends = {str(p): max(r.offset for r in records if r.partition == p) + 1 for p in {r.partition for r in records}}
    assert state["ends"][invoices] == ends


def test_customers_and_guests_are_placed_by_the_shared_partitioner(settings: Settings, tmp_path: Path) -> None:
    result = run_cli("replay", str(rows_file(tmp_path)), "--quiet", env=cli_env(settings, tmp_path))
    assert result.returncode == 0, result.stderr
    records = consume_all(settings.kafka, settings.topics.invoices)
    guests = [r for r in records if r.key.startswith(b"guest:")]
    assert len(guests) == ROWS // 5 and len(records) == ROWS
    assert all(r.partition == partition_of(r.key, settings.topics.partitions) for r in records)
    assert len({r.partition for r in records}) > 1


def test_the_same_checkpoint_against_a_fresh_broker_replays_every_row_there(settings: Settings, tmp_path: Path) -> None:
    path = rows_file(tmp_path)
    first = run_cli("replay", str(path), "--quiet", env=cli_env(settings, tmp_path))
    assert first.returncode == 0, first.stderr
    with TansuBroker() as fresh:
        on_fresh = cli_env(settings, tmp_path) | {"SEG_KAFKA__BOOTSTRAP_SERVERS": fresh.bootstrap_servers}
        again = run_cli("replay", str(path), "--quiet", env=on_fresh)
        assert again.returncode == 0, again.stderr
        assert "started over" in again.stdout and f"sent {ROWS} " in again.stdout
        assert seqs(KafkaSettings(bootstrap_servers=fresh.bootstrap_servers), settings.topics.invoices) == Counter(
            range(ROWS)
        )
    assert checkpoint_of(tmp_path)["acked"] == ROWS


def test_another_cluster_with_data_on_the_topic_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = rows_file(tmp_path)
    assert run_cli("replay", str(path), "--quiet", env=cli_env(settings, tmp_path)).returncode == 0
    with TansuBroker(cluster_id="another-cluster") as other:
        kafka = KafkaSettings(bootstrap_servers=other.bootstrap_servers)
        admin = make_admin(kafka)
        admin.create_topics([NewTopic(settings.topics.invoices, settings.topics.partitions, 1)])
        admin.close()
        write_foreign_record(kafka, settings.topics.invoices)
        refused = run_cli(
            "replay",
            str(path),
            "--quiet",
            env=cli_env(settings, tmp_path) | {"SEG_KAFKA__BOOTSTRAP_SERVERS": other.bootstrap_servers},
        )
        assert refused.returncode == 2, refused.stderr
        assert "'another-cluster'" in refused.stderr and "--from-scratch" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert seqs(kafka, settings.topics.invoices) == Counter()  # nothing of ours was sent there

        scratch = run_cli(
            "replay",
            str(path),
            "--quiet",
            "--from-scratch",
            env=cli_env(settings, tmp_path) | {"SEG_KAFKA__BOOTSTRAP_SERVERS": other.bootstrap_servers},
        )
        assert scratch.returncode == 0, scratch.stderr
        assert seqs(kafka, settings.topics.invoices) == Counter(range(ROWS))


def test_a_recreated_topic_starts_over_when_empty_and_is_refused_when_not(settings: Settings, tmp_path: Path) -> None:
    path = rows_file(tmp_path)
    env = cli_env(settings, tmp_path)
    invoices, dead_letter = settings.topics.invoices, settings.topics.dead_letter
    assert run_cli("replay", str(path), "--quiet", env=env).returncode == 0

    recreate(settings.kafka, invoices, settings.topics.partitions)
    recreate(settings.kafka, dead_letter, settings.topics.partitions)
    emptied = run_cli("replay", str(path), "--quiet", env=env)
    assert emptied.returncode == 0, emptied.stderr
    assert "started over" in emptied.stdout
    assert seqs(settings.kafka, invoices) == Counter(range(ROWS))

    recreate(settings.kafka, invoices, settings.topics.partitions)
    write_foreign_record(settings.kafka, invoices)
    refused = run_cli("replay", str(path), "--quiet", env=env)
    assert refused.returncode == 2, refused.stderr
    assert "re-created" in refused.stderr and "--from-scratch" in refused.stderr


def test_a_changed_partition_count_is_refused_with_the_rebootstrap_advice(settings: Settings, tmp_path: Path) -> None:
    path = rows_file(tmp_path)
    env = cli_env(settings, tmp_path)
    assert run_cli("replay", str(path), "--quiet", env=env).returncode == 0
    more = settings.topics.partitions + 1
    recreate(settings.kafka, settings.topics.invoices, more)  # Tansu has no CreatePartitions: a new topic
    write_foreign_record(settings.kafka, settings.topics.invoices)
    refused = run_cli("replay", str(path), "--quiet", env=env)
    assert refused.returncode == 2, refused.stderr
    assert f"with {settings.topics.partitions} partitions; it has {more} now" in refused.stderr
    assert "python -m worker bootstrap --force" in refused.stderr and "--from-scratch" in refused.stderr


def test_a_checkpoint_without_identity_is_refused_on_a_topic_with_data(settings: Settings, tmp_path: Path) -> None:
    path = rows_file(tmp_path)
    env = cli_env(settings, tmp_path)
    assert run_cli("replay", str(path), "--quiet", env=env).returncode == 0
    [checkpoint] = (tmp_path / "checkpoints").glob("replay-*.json")
    state = json.loads(checkpoint.read_text())
    checkpoint.write_text(json.dumps({key: state[key] for key in ("fingerprint", "acked", "complete")}))
    refused = run_cli("replay", str(path), "--quiet", env=env)
    assert refused.returncode == 2 and "older version" in refused.stderr and "--from-scratch" in refused.stderr


def test_a_partition_whose_end_is_behind_the_acknowledged_prefix_is_data_lost() -> None:
    """Same cluster, same topic id, fewer records than acknowledged: no broker here can lose data on demand."""
    identity = {"cluster_id": "c1", "topics": {"invoices": {"id": "t1", "partitions": 2}}}
    saved = Saved(acked=30, identity=identity, ends={"invoices": {0: 12, 1: 18}})
    intact = Target("c1", {"invoices": TopicState("t1", {0: 12, 1: 25})})
    assert resume_point(saved, intact, "invoices", "cp.json") == 30
    truncated = Target("c1", {"invoices": TopicState("t1", {0: 12, 1: 17})})
    with pytest.raises(CheckpointMismatchError) as lost:
        resume_point(saved, truncated, "invoices", "cp.json")
    assert "up to offset 18 in invoices partition 1; the partition ends at 17" in str(lost.value)
    assert "lost data" in str(lost.value) and "--from-scratch" in str(lost.value)
    empty = Target("c2", {"invoices": TopicState("t9", {0: 0, 1: 0})})
    assert resume_point(saved, empty, "invoices", "cp.json") == 0
