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

from producer.events import EventCounts, Selection, publishable_events
from producer.prepare import Message, to_message
from producer.replay import SEQ_HEADER, ReplayOptions, replay
from producer.settings import ProducerSettings
from shared.kafka_clients import ensure_topics, make_producer
from shared.settings import KafkaSettings, Settings


def run(settings: Settings, dataset: Path) -> dict[str, float]:
    """Replay ``dataset`` into a fresh topic, then send the same bytes raw; return both rates."""
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="producer-bench-") as workdir:
        config = ProducerSettings(checkpoint_dir=Path(workdir))
        options = ReplayOptions(topic=f"bench-replay-{tag}", from_scratch=True)
        summary = replay(dataset, settings, options, config)
    messages = _serialised(dataset, config)
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


def _serialised(dataset: Path, config: ProducerSettings) -> list[Message]:
    """Key, value and headers exactly as the replay sends them, built before timing."""
    events = publishable_events(dataset, Selection(reorder_buffer=config.reorder_buffer), EventCounts())
    return [to_message(event) for event in events]


def _raw_send_rate(settings: Settings, topic: str, messages: list[Message]) -> float:
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
