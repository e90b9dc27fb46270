"""Producer throughput: the full replay vs a bare kafka-python send loop of the same bytes.

Why both: the broker and kafka-python set a ceiling that no replay can beat; the
ratio says how much of that ceiling the replay's own work (reading, validation,
ordering, JSON, ack tracking, checkpoints) costs; the goal is replay >= 0.9x raw.
Run ``python -m bench.producer_bench`` (starts a local Tansu broker unless
SEG_KAFKA__BOOTSTRAP_SERVERS is set).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from producer.events import EventCounts, Selection, publishable_batches
from producer.replay import SEQ_HEADER, ReplayOptions, replay
from producer.settings import ProducerSettings
from shared.kafka_clients import ensure_topics, make_producer
from shared.settings import KafkaSettings, Settings


class Message(NamedTuple):
    """One message of the replay's stream, as the raw loop sends it."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


def run(settings: Settings, dataset: Path) -> dict[str, float]:
    """Replay ``dataset`` into a fresh topic, then send the same bytes raw; return both rates."""
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="producer-bench-") as workdir:
        config = ProducerSettings(checkpoint_dir=Path(workdir))
        options = ReplayOptions(topic=f"bench-replay-{tag}", from_scratch=True)
        summary = replay(dataset, settings, options, config)
    messages = _serialised(dataset, config, settings.topics.partitions)
    raw_rate = _raw_send_rate(settings, f"bench-raw-{tag}", messages)
    result = {
        "rows": float(len(messages)),
        "replay_rows_per_s": summary.rows_per_s,
        "raw_rows_per_s": raw_rate,
        "ratio": summary.rows_per_s / raw_rate,
    }
    print(
        f"replay {summary.rows_per_s:,.0f} rows/s | raw kafka-python send loop {raw_rate:,.0f} rows/s | "
        f"replay/raw {result['ratio']:.2f} (goal >= 0.9) | {len(messages):,} rows"
    )
    return result


def _serialised(dataset: Path, config: ProducerSettings, partitions: int) -> list[Message]:
    """Key, value and headers (but the sequence number) exactly as the replay sends them, built before timing."""
    selection = Selection(reorder_buffer=config.reorder_buffer)
    messages: list[Message] = []
    for batch in publishable_batches(dataset, selection, EventCounts(), range(partitions)):
        headers_of = {entry.index: tuple(entry.headers) for entry in batch.dead}
        messages += [
            Message(key, value, headers_of.get(index, ()))
            for index, (key, value) in enumerate(zip(batch.keys, batch.values, strict=True))
        ]
    return messages


def _raw_send_rate(settings: Settings, topic: str, messages: list[Message]) -> float:
    """kafka-python's own loop: key, value and headers per send, its default partitioner, the same settings."""
    ensure_topics(settings.kafka, [topic], settings.topics.partitions, settings.topics.replication_factor)
    producer = make_producer(settings.kafka)
    started = time.monotonic()
    for seq, message in enumerate(messages):
        headers = [*message.headers, (SEQ_HEADER, str(seq).encode())]
        producer.send(topic, key=message.key, value=message.value, headers=headers)
    producer.flush()
    elapsed = time.monotonic() - started
    producer.close()
    return len(messages) / elapsed


def main() -> None:
    from rig.local_services import TansuBroker

    dataset = Path(os.environ.get("SEG_DATASET", "/work/shared/data/online_retail.csv.xz"))
    if os.environ.get("SEG_KAFKA__BOOTSTRAP_SERVERS"):
        run(Settings(), dataset)
        return
    with TansuBroker() as broker:
        run(Settings(kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers)), dataset)


if __name__ == "__main__":
    main()
